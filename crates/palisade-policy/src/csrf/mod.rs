//! CSRF (placeholder).
