//! The web layer shared by both parties: strict form parsing, sessions and
//! CSRF, rate limits, middleware (security headers, head and body limits, the
//! body deadline, request log, error pages) and the account pages.

pub mod form;
pub mod limits;
pub mod middleware;
pub mod pages;
pub mod session;
