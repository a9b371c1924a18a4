use crate::Network;
pub(crate) fn format_network(_net: &Network) -> String {
    todo!("in progress")
}
