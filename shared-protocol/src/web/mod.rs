//! The web layer shared by both parties: strict form parsing, sessions and
//! CSRF, middleware (security headers, body limit, request log, error pages)
//! and the account pages.

pub mod form;
pub mod middleware;
pub mod pages;
pub mod session;
