//! Herald's pure core: identifiers, domain records, validation, pagination, token and secret
//! handling, and encryption at rest.
//!
//! Nothing in this crate performs IO (no sockets, files or database): it is the part of Herald
//! whose behaviour can be checked exhaustively with plain unit tests, and which the store, the
//! API, the delivery worker and the command line all share.

#![warn(missing_docs)]

pub mod background;
pub mod catalog;
pub mod crypto;
pub mod destination;
pub mod device;
pub mod filter;
pub mod headers;
pub mod id;
pub mod inbox;
pub mod model;
pub mod net;
pub mod openapi_import;
pub mod page;
pub mod rate;
pub mod retry;
pub mod routing;
pub mod secrets;
pub mod shape;
pub mod signing;
pub mod time;
pub mod token;
pub mod validate;
