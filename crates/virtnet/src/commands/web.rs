//! `web-token`: the web console's access token, from the daemon (root only).

use crate::cli::WebTokenArgs;
use crate::output::{Ctx, Failure};

/// `web-token [--url | --json]`: the bare token (for scripts), the login URL, or both as JSON.
pub fn web_token(ctx: &Ctx, args: &WebTokenArgs) -> Result<(), Failure> {
    let answer = ctx.client.web_token().map_err(|e| Failure::client(&e))?;
    if args.json {
        return ctx.json(&answer);
    }
    if args.url {
        ctx.print(&format!("{}\n", answer.login_url));
    } else {
        ctx.print(&format!("{}\n", answer.token));
    }
    Ok(())
}
