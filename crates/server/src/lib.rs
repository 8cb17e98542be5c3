//! The server: reads configuration, wires the adapters to the use cases, and serves HTTP.
//! Everything it does is wiring; behaviour lives in the domain and the adapters.

pub mod config;
pub mod operator;
pub mod system;
pub mod telemetry;
pub mod workers;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use adapters_http::{ApiState, Readiness};
use adapters_memory::MemoryStore;
use adapters_pg::{PgStore, PoolSettings};
use adapters_webhook::{HttpSender, SenderPolicy};
use anyhow::Context;
use domain::api_key::RateLimitTier;
use domain::ports::Clock;
use domain::use_cases::{Bootstrap, BootstrapOutcome, ControlPlane, Ports};

pub use config::{Cli, Command, Config};

/// How long in-flight requests get to finish after SIGTERM (API.md §10).
const SHUTDOWN_GRACE_SECS: u64 = 30;

pub struct Application {
    server: Server,
    port: u16,
    control_plane: ControlPlane,
    /// The admin key generated at start-up, when one was (embedded store, no BOOTSTRAP_ADMIN_KEY).
    generated_admin_key: Option<String>,
}

/// The embedded store lives in the process: it is ready whenever the process is.
struct AlwaysReady;

#[async_trait::async_trait]
impl Readiness for AlwaysReady {
    async fn is_ready(&self) -> bool {
        true
    }
}

/// PostgreSQL is ready when it answers and every migration is applied.
struct PgReadiness(PgStore);

#[async_trait::async_trait]
impl Readiness for PgReadiness {
    async fn is_ready(&self) -> bool {
        self.0.is_ready().await
    }
}

/// The control plane on the store the configuration names, and how to tell it is ready.
pub async fn wire(config: &Config) -> anyhow::Result<(ControlPlane, Arc<dyn Readiness>)> {
    wire_with_clock(config, Arc::new(system::SystemClock)).await
}

/// [`wire`] with a clock of the caller's: tests move time through it instead of sleeping.
pub async fn wire_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(ControlPlane, Arc<dyn Readiness>)> {
    match &config.database_url {
        None => {
            tracing::warn!(
                "DATABASE_URL is not set: using the embedded in-memory store; nothing persists"
            );
            let store = Arc::new(MemoryStore::new());
            Ok((
                ControlPlane::new(ports(store, clock, config)),
                Arc::new(AlwaysReady),
            ))
        }
        Some(url) => {
            adapters_pg::run_migrations(url)
                .await
                .context("applying the database migrations")?;
            let settings = PoolSettings {
                max_size: config.database_pool_size,
                ..PoolSettings::default()
            };
            // Lazy: a database that goes away later is reported by /readyz and answered with
            // 503 UNAVAILABLE, and the pool reconnects by itself when it returns.
            let store = PgStore::connect_lazy(url, settings).context("configuring the pool")?;
            let readiness = Arc::new(PgReadiness(store.clone()));
            let store = Arc::new(store);
            Ok((ControlPlane::new(ports(store, clock, config)), readiness))
        }
    }
}

impl Application {
    /// Wires the store, bootstraps, and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(system::SystemClock)).await
    }

    /// [`Self::build`] with a clock of the caller's (tests control time through it).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let (control_plane, readiness) = wire_with_clock(&config, clock).await?;
        let generated_admin_key = bootstrap(&control_plane, &config).await?;

        let listener = TcpListener::bind(&config.bind_addr)
            .with_context(|| format!("binding {}", config.bind_addr))?;
        let port = listener.local_addr()?.port();
        let state = ApiState {
            control_plane: control_plane.clone(),
            readiness,
            rate_limiter: Arc::new(adapters_http::RateLimiter::new()),
        };
        let mut server =
            HttpServer::new(move || App::new().configure(adapters_http::configure(state.clone())))
                .shutdown_timeout(SHUTDOWN_GRACE_SECS);
        if let Some(workers) = config.http_workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            server,
            port,
            control_plane,
            generated_admin_key,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The use cases this server runs on: for operator tasks and tests.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish, then lets the
    /// background workers finish what they are doing (a webhook delivery in flight is recorded).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let workers = workers::Workers::start(&self.control_plane);
        let served = self.server.await;
        workers.stop().await;
        // The last batch of `lastUsedAt` instants, so a clean stop loses none.
        if let Err(error) = self.control_plane.flush_key_usage().await {
            tracing::warn!(%error, "could not record the last uses of API keys at shutdown");
        }
        served
    }
}

fn ports<S>(store: Arc<S>, clock: Arc<dyn Clock>, config: &Config) -> Ports
where
    S: domain::ports::OrganizationStore
        + domain::ports::ApiKeyStore
        + domain::ports::IdempotencyStore
        + domain::ports::CreditStore
        + domain::ports::JobQueue
        + domain::ports::AuditLog
        + domain::ports::WebhookStore
        + 'static,
{
    if config.webhooks_allow_private_urls {
        tracing::warn!(
            "WEBHOOKS_ALLOW_PRIVATE_URLS is set: webhooks may go to http and to loopback and \
             private addresses (local development only)"
        );
    }
    let sender = HttpSender::new(SenderPolicy {
        allow_private_urls: config.webhooks_allow_private_urls,
    });
    Ports {
        organizations: store.clone(),
        api_keys: store.clone(),
        credits: store.clone(),
        jobs: store.clone(),
        audit: store.clone(),
        webhooks: store.clone(),
        idempotency: store,
        sender: Arc::new(sender),
        presenter: Arc::new(adapters_http::WirePresenter),
        clock,
        random: Arc::new(system::OsRandom),
    }
}

/// Ensures the bootstrap organization and key (API.md §9). Returns a key it generated.
async fn bootstrap(
    control_plane: &ControlPlane,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    if config.bootstrap_admin_key.is_none() && config.database_url.is_some() {
        return Ok(None);
    }
    let rate_limit_tier: RateLimitTier =
        config.bootstrap_rate_limit_tier.parse().map_err(|()| {
            anyhow::anyhow!(
                "BOOTSTRAP_RATE_LIMIT_TIER must be standard, pilot, partner, sandbox or unlimited"
            )
        })?;
    let outcome = control_plane
        .bootstrap(Bootstrap {
            organization_name: config.bootstrap_org_name.clone(),
            admin_key: config.bootstrap_admin_key.clone(),
            rate_limit_tier,
        })
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {e} ({e:?})"))?;
    Ok(match outcome {
        BootstrapOutcome::AlreadyInstalled { organization } => {
            tracing::info!(organization_id = %organization.id, "bootstrap admin key already installed");
            None
        }
        BootstrapOutcome::Created {
            organization,
            key,
            secret,
        } => {
            // Granted once, when the bootstrap organization is created (API.md §9).
            if config.bootstrap_credits > 0 {
                let credits = i64::try_from(config.bootstrap_credits)
                    .map_err(|_| anyhow::anyhow!("BOOTSTRAP_CREDITS is too large"))?;
                control_plane
                    .grant_credits(
                        organization.id,
                        credits,
                        Some("BOOTSTRAP_CREDITS".to_owned()),
                    )
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("granting BOOTSTRAP_CREDITS failed: {e} ({e:?})")
                    })?;
            }
            tracing::info!(organization_id = %organization.id, api_key_id = %key.id, prefix = %key.prefix(), "bootstrap organization created");
            secret
        }
    })
}
