//! Managed attack detection: request normalisation once per request, then tokenizer-based
//! detectors that score each attack class. No I/O and no clock.
