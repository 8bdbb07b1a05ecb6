//! Aggregations of per-file rows and per-run timings, done with polars' lazy API: accuracy
//! by any grouping column (class, tempo band, metadata), and wall time by worker count.
//! Only integer counts and order-independent reductions are taken from polars, so the
//! tables are the same whatever its thread pool does.

use polars::prelude::*;

/// Which files were right, one flag per file for each score.
#[derive(Debug, Clone, Copy)]
pub struct Hits<'a> {
    /// Right by Accuracy1.
    pub acc1: &'a [bool],
    /// Right by Accuracy2.
    pub acc2: &'a [bool],
    /// Right by Accuracy1 of either reading.
    pub either: &'a [bool],
}

/// The files of one group and how many of them each score counts as right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCounts {
    /// The group's value.
    pub key: String,
    /// Files in it.
    pub n: usize,
    /// Accuracy1 hits.
    pub acc1: usize,
    /// Accuracy2 hits.
    pub acc2: usize,
    /// Hits of either reading.
    pub either: usize,
}

/// Counts rows and the hits of each score per distinct value of `keys`, sorted by key.
pub fn accuracy_by(keys: &[String], hits: Hits) -> PolarsResult<Vec<GroupCounts>> {
    let to_u32 = |v: &[bool]| v.iter().map(|&b| u32::from(b)).collect::<Vec<u32>>();
    let df = df! {
        "key" => keys,
        "acc1" => to_u32(hits.acc1),
        "acc2" => to_u32(hits.acc2),
        "either" => to_u32(hits.either),
    }?;
    let out = df
        .lazy()
        .group_by([col("key")])
        .agg([
            len().cast(DataType::UInt64).alias("n"),
            col("acc1").sum().cast(DataType::UInt64).alias("hits1"),
            col("acc2").sum().cast(DataType::UInt64).alias("hits2"),
            col("either")
                .sum()
                .cast(DataType::UInt64)
                .alias("hits_either"),
        ])
        .sort(["key"], SortMultipleOptions::default())
        .collect()?;
    let key = out.column("key")?.str()?;
    let n = out.column("n")?.u64()?;
    let h1 = out.column("hits1")?.u64()?;
    let h2 = out.column("hits2")?.u64()?;
    let he = out.column("hits_either")?.u64()?;
    Ok((0..out.height())
        .map(|i| {
            let get = |c: &UInt64Chunked| c.get(i).unwrap_or(0) as usize;
            GroupCounts {
                key: key.get(i).unwrap_or("").to_string(),
                n: get(n),
                acc1: get(h1),
                acc2: get(h2),
                either: get(he),
            }
        })
        .collect())
}

/// Median wall time and run count per worker count, sorted by worker count:
/// `(workers, runs, median wall_s)`.
pub fn median_wall_by_workers(
    workers: &[u32],
    wall_s: &[f64],
) -> PolarsResult<Vec<(u32, usize, f64)>> {
    let df = df! {
        "workers" => workers,
        "wall_s" => wall_s,
    }?;
    let out = df
        .lazy()
        .group_by([col("workers")])
        .agg([
            len().cast(DataType::UInt64).alias("runs"),
            col("wall_s").median().alias("median"),
        ])
        .sort(["workers"], SortMultipleOptions::default())
        .collect()?;
    let w = out.column("workers")?.u32()?;
    let runs = out.column("runs")?.u64()?;
    let median = out.column("median")?.f64()?;
    Ok((0..out.height())
        .map(|i| {
            (
                w.get(i).unwrap_or(0),
                runs.get(i).unwrap_or(0) as usize,
                median.get(i).unwrap_or(0.0),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_counted_and_sorted() {
        let keys: Vec<String> = ["b", "a", "b", "b"].map(String::from).to_vec();
        let hits = Hits {
            acc1: &[true, false, true, false],
            acc2: &[true, true, true, false],
            either: &[true, true, true, true],
        };
        let got: Vec<_> = accuracy_by(&keys, hits)
            .unwrap()
            .into_iter()
            .map(|g| (g.key, g.n, g.acc1, g.acc2, g.either))
            .collect();
        assert_eq!(got, [("a".into(), 1, 0, 1, 1), ("b".into(), 3, 2, 2, 3)]);
        let none = Hits {
            acc1: &[],
            acc2: &[],
            either: &[],
        };
        assert!(accuracy_by(&[], none).unwrap().is_empty());
    }

    #[test]
    fn medians_by_workers() {
        let got = median_wall_by_workers(&[2, 1, 2, 1, 1], &[1.0, 4.0, 3.0, 2.0, 3.0]).unwrap();
        assert_eq!(got, [(1, 3, 3.0), (2, 2, 2.0)]);
    }
}
