//! `report.html`: one self-contained page (inline CSS, charts as inline SVG, no network) with
//! the tables, the machine and the exact command line of a run.

use std::fmt::Write as _;

use super::Host;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A percentage with one decimal: `87.5 %`.
pub fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// An HTML table; cells are escaped.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The most rows a per-file table of a report page lists (files not right, files not in
/// their key): a page of a million-file dataset must still open in a browser. The rest are
/// counted under the table, and `results.csv` keeps every file.
pub const FILE_ROWS: usize = 1000;

/// An HTML table of the first `cap` of `items` (cells by `cells`, escaped), then, when
/// some were left out, a line saying how many and where every one of them is. With no
/// more than `cap` items it is [`table`] of them all, byte for byte. Only the rows shown
/// are formatted: the rest are counted.
pub fn capped_table<T>(
    headers: &[&str],
    items: impl IntoIterator<Item = T>,
    cap: usize,
    cells: impl Fn(T) -> Vec<String>,
) -> String {
    let mut items = items.into_iter();
    let shown: Vec<Vec<String>> = items.by_ref().take(cap).map(cells).collect();
    let left_out = items.count();
    let mut out = table(headers, &shown);
    if left_out > 0 {
        let _ = write!(
            out,
            "<p>The first {} of {} files are listed; {left_out} more are left out of this \
             page. results.csv lists every file.</p>",
            shown.len(),
            shown.len() + left_out
        );
    }
    out
}

/// A chart for inline embedding: the SVG document without any XML prolog.
pub fn figure(svg: &str, caption: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    format!(
        "<figure>{}<figcaption>{}</figcaption></figure>",
        &svg[start..],
        escape(caption)
    )
}

/// A whole report page.
pub struct Page {
    /// Title and top heading.
    pub title: String,
    /// Headline numbers, shown as `label: value` tiles.
    pub headline: Vec<(String, String)>,
    /// Plain-language notes (caveats such as "4 and 8 workers cannot beat 2 cores").
    pub notes: Vec<String>,
    /// `(heading, inner HTML)` sections, in order.
    pub sections: Vec<(String, String)>,
    /// The machine.
    pub host: Host,
    /// The exact command line.
    pub command: String,
}

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;\
max-width:920px;color:#222;line-height:1.4}h1{font-size:26px;margin-bottom:4px}\
h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}\
table{border-collapse:collapse;margin:8px 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}\
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;background:#fafafa}\
.tile b{display:block;font-size:20px}.tile span{font-size:12px;color:#666}\
.notes{background:#fff6e0;border-left:4px solid #e69f00;padding:8px 14px}\
figure{margin:14px 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:13px;color:#555}code,pre{background:#f3f3f3;padding:2px 4px;\
white-space:pre-wrap;word-break:break-all}";

impl Page {
    /// Renders the page.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
            escape(&self.title),
            escape(&self.title)
        );
        if !self.headline.is_empty() {
            out.push_str("<div class=\"tiles\">");
            for (label, value) in &self.headline {
                let _ = write!(
                    out,
                    "<div class=\"tile\"><b>{}</b><span>{}</span></div>",
                    escape(value),
                    escape(label)
                );
            }
            out.push_str("</div>");
        }
        if !self.notes.is_empty() {
            out.push_str("<div class=\"notes\"><ul>");
            for note in &self.notes {
                let _ = write!(out, "<li>{}</li>", escape(note));
            }
            out.push_str("</ul></div>");
        }
        for (heading, inner) in &self.sections {
            let _ = write!(out, "<h2>{}</h2>{inner}", escape(heading));
        }
        let h = &self.host;
        let machine = table(
            &["", ""],
            &[
                vec!["CPU".into(), h.cpu_model.clone()],
                vec!["cores available".into(), h.cores.to_string()],
                vec![
                    "physical cores".into(),
                    h.physical_cores.map_or("unknown".into(), |c| c.to_string()),
                ],
                vec!["memory".into(), format!("{:.1} GiB", h.memory_gib)],
                vec!["OS".into(), h.os.clone()],
            ],
        );
        let _ = writeln!(
            out,
            "<h2>Machine</h2>{machine}<h2>Command</h2><pre>{}</pre></body></html>",
            escape(&self.command)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_strips_prolog() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
        let f = figure("<?xml version=\"1.0\"?>\n<svg x=\"1\"></svg>", "c");
        assert!(f.starts_with("<figure><svg x=\"1\">"), "{f}");
    }

    #[test]
    fn a_capped_table_lists_the_first_rows_and_counts_the_rest() {
        let cells = |i: usize| vec![format!("{i}.wav")];
        let all: Vec<Vec<String>> = (0..5).map(cells).collect();
        // Up to the cap: the plain table, byte for byte.
        assert_eq!(
            capped_table(&["file"], 0..5, 5, cells),
            table(&["file"], &all)
        );
        let capped = capped_table(&["file"], 0..5, 2, cells);
        assert!(capped.starts_with(&table(&["file"], &all[..2])), "{capped}");
        assert!(!capped.contains("2.wav"), "{capped}");
        assert!(
            capped.ends_with(
                "<p>The first 2 of 5 files are listed; 3 more are left out of this page. \
                 results.csv lists every file.</p>"
            ),
            "{capped}"
        );
    }
}
