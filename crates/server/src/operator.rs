//! The operator's subcommands (API.md §9): whoever runs the server manages top-level
//! organizations and the database from the command line.

use anyhow::{anyhow, bail, Context};
use domain::api_key::RateLimitTier;
use domain::organization::OrganizationName;
use domain::{ApiKeyId, OrganizationId};

const TIERS: &str = "the tier must be standard, pilot, partner, sandbox or unlimited";

use crate::config::{Command, Config};

/// Runs an operator subcommand (anything but `serve`).
pub async fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    let Some(url) = &config.database_url else {
        bail!("this command needs DATABASE_URL: the embedded store lives only inside a running server");
    };
    if let Command::Migrate = command {
        adapters_pg::run_migrations(url)
            .await
            .context("applying the database migrations")?;
        println!("migrations applied");
        return Ok(());
    }
    let (control_plane, _) = crate::wire(config).await?;
    let describe = |e: domain::DomainError| anyhow!("{e} ({e:?})");
    match command {
        Command::CreateOrganization {
            name,
            rate_limit_tier,
        } => {
            let name =
                OrganizationName::parse(&name).map_err(|e| anyhow!("--name {}", e.message))?;
            let tier: RateLimitTier = rate_limit_tier.parse().map_err(|()| {
                anyhow!("--rate-limit-tier must be standard, pilot, partner, sandbox or unlimited")
            })?;
            let (organization, minted) = control_plane
                .create_top_level(name, tier)
                .await
                .map_err(describe)?;
            println!("organization {}", organization.id);
            println!("admin key (shown once): {}", minted.secret.reveal());
        }
        Command::SuspendOrganization { id } => {
            let org = control_plane
                .suspend_top_level(parse_id(&id)?)
                .await
                .map_err(describe)?;
            println!("organization {} is {}", org.id, org.status.kind());
        }
        Command::ResumeOrganization { id } => {
            let org = control_plane
                .resume_top_level(parse_id(&id)?)
                .await
                .map_err(describe)?;
            println!("organization {} is {}", org.id, org.status.kind());
        }
        Command::SetKeyTier { key_id, tier } => {
            let id = ApiKeyId::parse(&key_id).map_err(|e| anyhow!("key id {key_id:?}: {e}"))?;
            let tier: RateLimitTier = tier.parse().map_err(|()| anyhow!("{TIERS}"))?;
            let key = control_plane
                .set_rate_limit_tier(id, tier)
                .await
                .map_err(describe)?;
            println!("key {} is on the {} tier", key.id, key.rate_limit_tier);
        }
        Command::GrantCredits {
            id,
            credits,
            description,
        } => {
            let event = control_plane
                .grant_credits(parse_id(&id)?, credits, description)
                .await
                .map_err(describe)?;
            println!(
                "granted {} credits to {}: balance {}",
                event.entry.credits, event.entry.organization_id, event.balance_after
            );
        }
        Command::Serve | Command::Migrate => {}
    }
    Ok(())
}

fn parse_id(raw: &str) -> anyhow::Result<OrganizationId> {
    OrganizationId::parse(raw).map_err(|e| anyhow!("organization id {raw:?}: {e}"))
}
