//! Cross-service tests: the real services, gateway, PostgreSQL and a tansu broker.

mod booking;
mod flow;
mod gateway_auth;
mod grpc_web;
mod messaging;
mod platform;
