//! Cross-service tests: the real services, gateway, PostgreSQL and a tansu broker.

mod answer_admin;
mod attachments;
mod booking;
mod favourites;
mod flow;
mod gateway_auth;
mod grpc_web;
mod human;
mod messaging;
mod platform;
mod web_e2e;
