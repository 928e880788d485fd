//! identity (placeholder).
