//! Aggregations of per-file rows and per-run timings, done with polars' lazy API: accuracy
//! by any grouping column (class, tempo band, metadata), and wall time by worker count.
//! Only integer counts and order-independent reductions are taken from polars, so the
//! tables are the same whatever its thread pool does.

use polars::prelude::*;

/// Hits of one group: `(key, n, acc1 hits, acc2 hits)`, sorted by key.
pub type GroupCounts = Vec<(String, usize, usize, usize)>;

/// Counts rows, Accuracy1 hits and Accuracy2 hits per distinct value of `keys`.
pub fn accuracy_by(keys: &[String], acc1: &[bool], acc2: &[bool]) -> PolarsResult<GroupCounts> {
    let to_u32 = |v: &[bool]| v.iter().map(|&b| u32::from(b)).collect::<Vec<u32>>();
    let df = df! {
        "key" => keys,
        "acc1" => to_u32(acc1),
        "acc2" => to_u32(acc2),
    }?;
    let out = df
        .lazy()
        .group_by([col("key")])
        .agg([
            len().cast(DataType::UInt64).alias("n"),
            col("acc1").sum().cast(DataType::UInt64).alias("hits1"),
            col("acc2").sum().cast(DataType::UInt64).alias("hits2"),
        ])
        .sort(["key"], SortMultipleOptions::default())
        .collect()?;
    let key = out.column("key")?.str()?;
    let n = out.column("n")?.u64()?;
    let h1 = out.column("hits1")?.u64()?;
    let h2 = out.column("hits2")?.u64()?;
    Ok((0..out.height())
        .map(|i| {
            let get = |c: &UInt64Chunked| c.get(i).unwrap_or(0) as usize;
            (
                key.get(i).unwrap_or("").to_string(),
                get(n),
                get(h1),
                get(h2),
            )
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
        let got = accuracy_by(
            &keys,
            &[true, false, true, false],
            &[true, true, true, false],
        )
        .unwrap();
        assert_eq!(got, [("a".into(), 1, 0, 1), ("b".into(), 3, 2, 2)]);
        assert!(accuracy_by(&[], &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn medians_by_workers() {
        let got = median_wall_by_workers(&[2, 1, 2, 1, 1], &[1.0, 4.0, 3.0, 2.0, 3.0]).unwrap();
        assert_eq!(got, [(1, 3, 3.0), (2, 2, 2.0)]);
    }
}
