//! Rate-limit benchmarks (filled in below).

fn main() {}
