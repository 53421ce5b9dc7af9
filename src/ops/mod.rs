//! Running the gateway as a service: the admin listener's routes and logging.

pub(crate) mod admin;
pub mod logging;
pub(crate) mod metrics;
