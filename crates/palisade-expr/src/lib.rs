//! The rule language: Cloudflare's firewall expression language, parsed, type-checked and
//! compiled to a fast evaluator. No I/O: the gateway hands in field values through a trait.
