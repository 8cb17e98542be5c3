//! Configuration, from the environment (API.md §10). `server --help` lists every variable.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "The partner organizations control plane (HTTP API)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default). With DATABASE_URL, applies pending migrations first.
    Serve,
    /// Apply pending database migrations (needs DATABASE_URL), then exit.
    Migrate,
    /// Create a top-level organization and print its first admin key (needs DATABASE_URL).
    CreateOrganization {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// Rate-limit tier of its admin key.
        #[arg(long, default_value = "partner")]
        rate_limit_tier: String,
    },
    /// The platform-level kill switch: suspend a top-level organization, cutting off its keys and
    /// its children's keys (needs DATABASE_URL).
    SuspendOrganization {
        /// The top-level organization's id.
        id: String,
    },
    /// Resume a suspended top-level organization (needs DATABASE_URL).
    ResumeOrganization {
        /// The top-level organization's id.
        id: String,
    },
    /// Grant credits to a top-level organization (needs DATABASE_URL).
    GrantCredits {
        /// The top-level organization's id.
        id: String,
        /// How many credits (an integer > 0).
        credits: i64,
        /// Recorded on the ledger event.
        #[arg(long)]
        description: Option<String>,
    },
    /// Set an API key's rate-limit tier: standard, pilot, partner, sandbox or unlimited (needs
    /// DATABASE_URL).
    SetKeyTier {
        /// The key's id.
        key_id: String,
        /// The tier.
        tier: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL URL. Unset: the embedded in-memory store (nothing persists).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most PostgreSQL connections each server process holds open.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: usize,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: String,
    /// Log filter, e.g. `info` or `adapters_http=debug,info` (read by the logger itself).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Allow webhook URLs on http, loopback and private addresses (local development and tests).
    #[arg(long, env = "WEBHOOKS_ALLOW_PRIVATE_URLS", default_value_t = false)]
    pub webhooks_allow_private_urls: bool,
    /// A key (lp_<env>_<handle>_<secret>) that start-up installs as the admin key of a top-level
    /// organization, scopes ["*", "org:admin"]. Unset with the embedded store: one is generated
    /// and printed once.
    #[arg(long, env = "BOOTSTRAP_ADMIN_KEY", hide_env_values = true)]
    pub bootstrap_admin_key: Option<String>,
    /// Name of the bootstrap top-level organization.
    #[arg(
        long,
        env = "BOOTSTRAP_ORG_NAME",
        default_value = "Default organization"
    )]
    pub bootstrap_org_name: String,
    /// Credits granted once to the bootstrap organization when it is created.
    #[arg(long, env = "BOOTSTRAP_CREDITS", default_value_t = 0)]
    pub bootstrap_credits: u64,
    /// Rate-limit tier of the bootstrap key.
    #[arg(long, env = "BOOTSTRAP_RATE_LIMIT_TIER", default_value = "partner")]
    pub bootstrap_rate_limit_tier: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub http_workers: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The defaults, as `server` with an empty environment would have them (for tests).
    pub fn embedded() -> Self {
        Self {
            database_url: None,
            database_pool_size: 10,
            bind_addr: "127.0.0.1:0".to_owned(),
            rust_log: "info".to_owned(),
            log_format: LogFormat::Text,
            webhooks_allow_private_urls: false,
            bootstrap_admin_key: None,
            bootstrap_org_name: "Default organization".to_owned(),
            bootstrap_credits: 0,
            bootstrap_rate_limit_tier: "partner".to_owned(),
            http_workers: None,
        }
    }
}
