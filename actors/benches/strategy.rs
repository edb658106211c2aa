//! Strategy benchmarks (being written).
fn main() {}
