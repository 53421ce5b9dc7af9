//! Sessions: what one is and when it ends ([`model`]), its bytes ([`codec`]), their
//! encryption ([`seal`]) and the cookies that carry them ([`cookies`]).
//!
//! The session layer knows nothing of HTTP routing or OIDC: it never decides whether a
//! request may pass, never talks to the IdP, and reads no clock or random source itself.
//! Callers pass `now` and a [`Random`](crate::clock::Random).

pub mod codec;
pub mod cookies;
pub mod model;
pub mod seal;

pub use codec::DecodeError;
pub use cookies::{Carried, ChunkError, ChunkedCookie, CookieNameError, Scheme, ValueError};
pub use model::{
    Claims, Session, SessionId, SessionPolicy, Validity, absolute_deadline, check, idle_deadline,
    touch,
};
pub use seal::{KeyRing, KeyRingError, OpenError, Purpose};
