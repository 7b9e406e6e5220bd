//! Herald's integration tests: one binary that starts the application on port 0 (and, from the
//! delivery engine on, a test receiver on port 0) and talks to it over HTTP.

// Tests (and this measuring tool) unwrap: a failed step should stop them loudly.
#![allow(clippy::unwrap_used)]

mod child;
mod helpers;
mod receiver;
#[path = "../support/mod.rs"]
mod support;
mod tcp_proxy;

mod api_apps;
mod api_auth;
mod api_endpoints;
mod api_event_types;
mod api_idempotency;
mod api_messages;
mod api_pagination;
mod api_schedule_tags;
mod api_validation;
mod architecture;
mod background_tasks;
mod brokers;
mod browser;
mod cli;
mod cli_tools;
mod crash;
mod delivery;
mod delivery_failures;
mod devices;
mod disk_full;
mod docs;
mod environment;
mod inbox;
mod inbox_gateway;
mod integrations;
mod isolation;
mod keys;
mod limits;
mod logs;
mod module_graph;
mod nesting;
mod network_policy;
pub mod observability;
mod operational;
mod polling;
mod polling_nodes;
mod portal;
mod postgres_nodes;
mod sdk;
mod seed_firebase;
mod seed_ideavate;
mod seed_impilo;
mod seed_kobiton;
mod shaping;
mod signatures;
mod trace_logs;
mod transformations;
mod upgrade;
