use clap::Parser;
use server::{Application, Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    server::telemetry::init(cli.config.log_format, &cli.config.rust_log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(cli.config.clone()).await?;
            if let Some(key) = app.generated_admin_key() {
                // Printed once, to the terminal, never to the log.
                println!("Generated admin key (shown once; the embedded store forgets it on exit):\n{key}");
            }
            tracing::info!(addr = %cli.config.bind_addr, port = app.port(), "listening");
            app.run_until_stopped().await?;
        }
        operator_command => server::operator::run(operator_command, &cli.config).await?,
    }
    Ok(())
}
