//! Developer tasks behind `cargo xtask`: protobuf code generation and the local platform
//! runner used by `make dev`.

pub mod codegen;
pub mod dev;
