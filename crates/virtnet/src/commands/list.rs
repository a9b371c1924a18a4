//! `net-list`.

use virtnet_api::NetworkSummary;

use crate::cli::NetListArgs;
use crate::output::{Ctx, Failure};
use crate::table::Table;

/// Which networks `net-list` shows (virsh's `VIR_CONNECT_LIST_NETWORKS_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// Show active networks.
    pub active: bool,
    /// Show inactive networks.
    pub inactive: bool,
    /// `--persistent`.
    pub persistent: bool,
    /// `--transient`.
    pub transient: bool,
    /// `--autostart`.
    pub autostart: bool,
    /// `--no-autostart`.
    pub no_autostart: bool,
}

impl Filter {
    /// The filter of these options: active networks unless `--inactive` or `--all`.
    pub fn from_args(a: &NetListArgs) -> Filter {
        let (active, inactive) = if a.all {
            (true, true)
        } else if a.inactive {
            (false, true)
        } else {
            (true, false)
        };
        Filter {
            active,
            inactive,
            persistent: a.persistent,
            transient: a.transient,
            autostart: a.autostart,
            no_autostart: a.no_autostart,
        }
    }

    /// Does this network pass? Within a group the flags are alternatives; a group with no
    /// flag set does not filter.
    pub fn matches(&self, n: &NetworkSummary) -> bool {
        let state = (self.active && n.active) || (self.inactive && !n.active);
        let persistence = (!self.persistent && !self.transient)
            || (self.persistent && n.persistent)
            || (self.transient && !n.persistent);
        let autostart = (!self.autostart && !self.no_autostart)
            || (self.autostart && n.autostart)
            || (self.no_autostart && !n.autostart);
        state && persistence && autostart
    }
}

/// Filters and sorts as virsh does (case-insensitive by name).
pub fn select(mut nets: Vec<NetworkSummary>, filter: &Filter) -> Vec<NetworkSummary> {
    nets.retain(|n| filter.matches(n));
    nets.sort_by(|a, b| {
        a.name
            .to_ascii_lowercase()
            .cmp(&b.name.to_ascii_lowercase())
    });
    nets
}

/// The table row of one network.
pub fn row(n: &NetworkSummary) -> [String; 4] {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    [
        n.name.clone(),
        if n.active { "active" } else { "inactive" }.to_string(),
        yes_no(n.autostart),
        yes_no(n.persistent),
    ]
}

/// `net-list`.
pub fn net_list(ctx: &Ctx, a: &NetListArgs) -> Result<(), Failure> {
    if u8::from(a.table) + u8::from(a.name) + u8::from(a.uuid) > 1 {
        return Err(Failure::msg(
            "Only one argument from --table, --name and --uuid may be specified.",
        ));
    }
    let nets = ctx
        .client
        .list()
        .map_err(|e| Failure::with_context("Failed to list networks", &e))?;
    let nets = select(nets, &Filter::from_args(a));
    print_list(ctx, a, &nets)?;
    warn_unreadable(ctx);
    Ok(())
}

/// Warns on stderr about stored records the daemon set aside as unreadable, so that stdout
/// stays what scripts parse. A daemon without the resource (older) has nothing to report.
fn warn_unreadable(ctx: &Ctx) {
    let Ok(unreadable) = ctx.client.unreadable_networks() else {
        return;
    };
    for u in unreadable {
        ctx.warn(&format!(
            "stored network '{}' cannot be read and was set aside (not started): {}; remove \
             it with 'virtnet net-undefine {}'",
            u.name, u.reason, u.name
        ));
    }
}

/// Prints the selected networks in the format asked for.
fn print_list(ctx: &Ctx, a: &NetListArgs, nets: &[NetworkSummary]) -> Result<(), Failure> {
    if a.json {
        return ctx.json(&nets);
    }
    if a.uuid {
        let text: String = nets.iter().map(|n| format!("{}\n", n.uuid)).collect();
        ctx.print(&text);
        return Ok(());
    }
    if a.name {
        let text: String = nets.iter().map(|n| format!("{}\n", n.name)).collect();
        ctx.print(&text);
        return Ok(());
    }
    let mut header = vec!["Name", "State", "Autostart", "Persistent"];
    if a.title {
        header.push("Title");
    }
    let mut table = Table::new(header);
    for n in nets {
        let mut cells = row(n).to_vec();
        if a.title {
            let detail = ctx
                .client
                .get(&n.uuid.to_string(), false)
                .map_err(|e| Failure::lookup(&n.name, &e))?;
            cells.push(detail.definition.title.unwrap_or_default());
        }
        table.push(cells);
    }
    ctx.print(&table.render(!ctx.quiet));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtnet_model::ForwardMode;

    fn net(name: &str, active: bool, persistent: bool, autostart: bool) -> NetworkSummary {
        NetworkSummary {
            name: name.into(),
            uuid: uuid::Uuid::nil(),
            active,
            persistent,
            autostart,
            bridge: None,
            forward_mode: ForwardMode::Nat,
        }
    }

    fn args() -> NetListArgs {
        NetListArgs {
            inactive: false,
            all: false,
            persistent: false,
            transient: false,
            autostart: false,
            no_autostart: false,
            uuid: false,
            name: false,
            table: false,
            title: false,
            json: false,
        }
    }

    fn names(nets: &[NetworkSummary]) -> Vec<&str> {
        nets.iter().map(|n| n.name.as_str()).collect()
    }

    fn sample() -> Vec<NetworkSummary> {
        vec![
            net("b-inactive", false, true, true),
            net("A-active", true, true, false),
            net("c-transient", true, false, false),
        ]
    }

    #[test]
    fn default_is_active_only_sorted_case_insensitively() {
        let got = select(sample(), &Filter::from_args(&args()));
        assert_eq!(names(&got), ["A-active", "c-transient"]);
    }

    #[test]
    fn all_inactive_and_groups() {
        let mut a = args();
        a.all = true;
        assert_eq!(
            names(&select(sample(), &Filter::from_args(&a))),
            ["A-active", "b-inactive", "c-transient"]
        );
        a.transient = true;
        assert_eq!(
            names(&select(sample(), &Filter::from_args(&a))),
            ["c-transient"]
        );
        a.persistent = true;
        assert_eq!(select(sample(), &Filter::from_args(&a)).len(), 3);
        let mut a = args();
        a.inactive = true;
        assert_eq!(
            names(&select(sample(), &Filter::from_args(&a))),
            ["b-inactive"]
        );
        let mut a = args();
        a.all = true;
        a.no_autostart = true;
        assert_eq!(
            names(&select(sample(), &Filter::from_args(&a))),
            ["A-active", "c-transient"]
        );
    }

    #[test]
    fn rows() {
        assert_eq!(
            row(&net("default", false, true, false)),
            ["default", "inactive", "no", "yes"]
        );
    }
}
