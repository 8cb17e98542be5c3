//! Use cases against mockall mocks of the ports: each test states what the ports are asked and
//! what the caller gets.

mod api_keys;
mod authenticate;
mod credits;
mod organizations;
mod webhooks;
