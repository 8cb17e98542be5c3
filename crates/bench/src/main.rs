//! The benchmark baseline: the least a request to the API can cost — an actix-web handler doing one
//! primary-key `SELECT` through the same PostgreSQL pool the server uses, with no authentication,
//! no policy and no JSON of any size. `scripts/bench.sh` runs it beside the real server and
//! reports the server's figures as ratios of this one's.
//!
//! `DATABASE_URL=… BIND_ADDR=127.0.0.1:9090 baseline` then `GET /baseline/<org id>`.

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use adapters_pg::{PgStore, PoolSettings};
use anyhow::Context;
use domain::ports::OrganizationStore;
use domain::OrganizationId;

async fn one_select(store: web::Data<Arc<PgStore>>, id: web::Path<String>) -> HttpResponse {
    let Ok(id) = OrganizationId::parse(&id) else {
        return HttpResponse::UnprocessableEntity().finish();
    };
    match store.find(id).await {
        Ok(Some(org)) => HttpResponse::Ok().body(org.name.as_str().to_owned()),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:9090".to_owned());
    let pool_size = std::env::var("DATABASE_POOL_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let settings = PoolSettings {
        max_size: pool_size,
        ..PoolSettings::default()
    };
    let store = Arc::new(PgStore::connect(&url, settings).await?);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(store.clone()))
            .route("/baseline/{id}", web::get().to(one_select))
    });
    if let Some(workers) = std::env::var("HTTP_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        server = server.workers(workers);
    }
    server.bind(&bind)?.run().await?;
    Ok(())
}
