//! The gateway over real sockets: a real upstream server, the gateway in-process on port 0,
//! real HTTP clients.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod bearer;
mod forward_auth;
mod identity;
mod limits;
mod login;
mod logout;
mod nginx;
mod notice;
mod preserve;
mod proxy;
mod redis;
mod refresh;
mod rules;
mod sessions;
mod shutdown;
mod tls;
mod websocket;
