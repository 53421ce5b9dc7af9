//! OpenID Connect: discovery, the provider's keys, the authorization-code flow and ID token
//! validation. The only module that speaks to the identity provider or imports jsonwebtoken;
//! it knows nothing of cookies, sessions or routing.

mod bearer;
mod discovery;
mod flow;
mod http;
pub mod id_token;
mod introspection;
mod jwks;
mod logout_token;
mod provider;

pub(crate) use bearer::BearerError;
pub(crate) use flow::{Attempt, TokenError};
pub(crate) use id_token::IdTokenError;
pub(crate) use introspection::IntrospectionCache;
pub(crate) use logout_token::MAX_AGE as LOGOUT_TOKEN_MAX_AGE;
pub(crate) use provider::Provider;
