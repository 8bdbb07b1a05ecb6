//! Rows that finish in any order, written in input order: each as soon as every row before
//! it is written, so a reader of stdout sees the same order whatever the worker count. A
//! run in input order (`--schedule input`) shows its first rows at once; costliest first
//! (the default), the rows behind a file that starts late wait for it, often to the end.

use std::io::{self, Write};

/// Puts rows that finish in any order on `out` in input order.
pub struct InOrder<W: Write> {
    out: W,
    next: usize,
    waiting: Vec<Option<Vec<u8>>>,
}

impl InOrder<io::Stdout> {
    /// Rows of `len` inputs, on stdout.
    pub fn stdout(len: usize) -> Self {
        InOrder::new(len, io::stdout())
    }
}

impl<W: Write> InOrder<W> {
    /// Rows of `len` inputs, on `out`.
    pub fn new(len: usize, out: W) -> Self {
        InOrder {
            out,
            next: 0,
            waiting: vec![None; len],
        }
    }

    /// Takes the row at input position `i` and writes every row now in sequence.
    pub fn push(&mut self, i: usize, line: Vec<u8>) -> io::Result<()> {
        self.waiting[i] = Some(line);
        while let Some(line) = self.waiting.get_mut(self.next).and_then(Option::take) {
            self.out.write_all(&line)?;
            self.next += 1;
        }
        self.out.flush()
    }

    /// Writes every row still waiting (after a cancel, the rows behind a gap).
    pub fn flush_rest(&mut self) -> io::Result<()> {
        for line in self.waiting.iter_mut().filter_map(Option::take) {
            self.out.write_all(&line)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_waits_for_the_rows_before_it_and_the_rest_follow_a_gap() {
        let mut rows = InOrder::new(4, Vec::new());
        rows.push(1, b"b\n".to_vec()).unwrap();
        assert!(rows.out.is_empty(), "row 1 waits for row 0");
        rows.push(0, b"a\n".to_vec()).unwrap();
        assert_eq!(rows.out, b"a\nb\n");
        rows.push(3, b"d\n".to_vec()).unwrap();
        assert_eq!(rows.out, b"a\nb\n", "row 3 waits for row 2");
        rows.flush_rest().unwrap();
        assert_eq!(
            rows.out, b"a\nb\nd\n",
            "a cancelled run still writes what it has"
        );
    }
}
