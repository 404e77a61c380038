//! Session service tests against PostgreSQL and a tansu broker.

mod delivery;
