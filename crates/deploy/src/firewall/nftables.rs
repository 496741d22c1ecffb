//! [`FirewallDriver`] over the `nft` binary.

use edgenet_host::nft::Nft;
use tracing::{debug, info};

use super::nft_rules::{self, Ruleset, FAMILY};
use super::{check_ours, ApplyOutcome, FirewallDriver, FirewallError, FirewallPlan};

/// The nftables backend. Runs `nft` in the calling thread's network namespace.
#[derive(Debug, Clone, Default)]
pub struct NftablesDriver {
    nft: Nft,
}

impl NftablesDriver {
    pub fn new(nft: Nft) -> Self {
        NftablesDriver { nft }
    }
}

impl FirewallDriver for NftablesDriver {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn validate(&self) -> Result<(), FirewallError> {
        let path = self.nft.locate()?;
        debug!(path = %path.display(), "nft found");
        Ok(())
    }

    /// Compares first, so a deploy that changes nothing sends nothing (and table handles, which
    /// the kernel renumbers on every replace, stay put); otherwise replaces the table in one
    /// transaction and checks that the kernel now holds exactly the plan.
    fn apply(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError> {
        check_ours(&fw.table)?;
        let want = nft_rules::build(fw);
        match self.live(&fw.table)? {
            Some(live) if live == want => {
                debug!(table = %fw.table, "nftables table already up to date");
                return Ok(ApplyOutcome::Unchanged);
            }
            // Replacing deletes the old table in the same transaction, which costs the kernel a
            // grace period (~20 ms): only pay it when there is a table to replace. If nft lists
            // rules differently from how we write them (another nft version), every deploy
            // replaces the table: still correct, only not a no-op; the idempotence tests catch it.
            Some(_) => self.nft.apply(&want.replace_document())?,
            None => self.nft.apply(&want.create_document())?,
        }
        info!(table = %fw.table, rules = want.rules.len(), "nftables table written");
        Ok(ApplyOutcome::Replaced)
    }

    /// One transaction, no listing first (a spawn of `nft` saved): `add` + `flush` of the table
    /// makes it empty whether or not it existed, then chains and rules are added.
    fn create(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError> {
        check_ours(&fw.table)?;
        let want = nft_rules::build(fw);
        self.nft.apply(&want.create_document())?;
        info!(table = %fw.table, rules = want.rules.len(), "nftables table written");
        Ok(ApplyOutcome::Replaced)
    }

    fn remove(&self, table: &str) -> Result<bool, FirewallError> {
        check_ours(table)?;
        let existed = self.nft.delete_table(FAMILY, table)?;
        if existed {
            info!(%table, "nftables table deleted");
        }
        Ok(existed)
    }

    fn live(&self, table: &str) -> Result<Option<Ruleset>, FirewallError> {
        check_ours(table)?;
        Ok(self
            .nft
            .list_table(FAMILY, table)?
            .as_ref()
            .and_then(Ruleset::from_listing))
    }
}
