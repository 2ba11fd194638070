//! Unit tests of the statement helpers.

use proptest::prelude::*;

use super::*;

#[test]
fn row_chunks_of_the_bench_batches() {
    assert_eq!(row_chunks(1_000, 2_184).collect::<Vec<_>>(), [512, 256, 128, 64, 32, 8]);
    assert_eq!(
        row_chunks(10_000, 2_184).collect::<Vec<_>>(),
        [2_048, 2_048, 2_048, 2_048, 1_024, 512, 256, 16]
    );
    assert_eq!(row_chunks(0, 2_184).count(), 0);
    assert_eq!(row_chunks(3, 0).collect::<Vec<_>>(), [1, 1, 1]);
}

proptest! {
    /// Every row lands in exactly one statement, no statement passes the limit, and only
    /// powers of two occur, so a connection never prepares more than a few distinct statements.
    #[test]
    fn row_chunks_cover_every_row_within_the_limit(total in 0usize..100_000, max in 1usize..5_000) {
        let chunks: Vec<usize> = row_chunks(total, max).collect();
        prop_assert_eq!(chunks.iter().sum::<usize>(), total);
        prop_assert!(chunks.iter().all(|size| *size <= max && size.is_power_of_two()));
        // Full-size statements, then at most one of each smaller power of two.
        let largest = 1usize << max.ilog2();
        prop_assert!(chunks.len() <= total / largest + largest.ilog2() as usize + 1);
        prop_assert!(chunks.windows(2).all(|pair| pair[0] >= pair[1]));
    }
}
