//! `TronRail`: the [`PayoutRail`] that pays USDT-TRC20 on TRON through the [`TronClient`].
//!
//! Building an attempt takes a fresh head block as TAPOS reference and clock (expiration = head
//! time + `tron.tx_expiration`), a dry-run energy estimate and the chain's energy price for the
//! fee limit (above the cap: a typed refusal, nothing signed). The raw transaction is built
//! locally, or, in [`BuildMode::RemoteTrigger`], taken from `/wallet/triggersmartcontract` and
//! signed only after `verify_remote_tx` found it to be exactly the intended transfer. Broadcasts
//! send the stored bytes after checking their txid and signature; they never build anything.
//! The hot-wallet key stays inside: `Debug` shows the address only.

use async_trait::async_trait;
use lucid_core::{MicroUsdt, UnixMillis};

use crate::Error;
use crate::address::TronAddress;
use crate::rail::{
    BroadcastOutcome, ChainStatus, ExpectedTransfer, HotWallet, PayoutRail, Preflight, RailKind,
    RejectCode, SignedTransfer as StoredTransfer, TransferIntent, Txid as RawTxid,
};
use crate::tron::client::{BroadcastBytes, TronClient, TxLookup};
use crate::tron::fee::{DEFAULT_FEE_LIMIT_MAX_SUN, fee_limit_sun};
use crate::tron::key::HotWalletKey;
use crate::tron::tx::{
    self, DEFAULT_EXPIRATION_MS, MAX_EXPIRATION_MS, SignedTransfer, TransferParams, Txid,
};

/// How much later than our own head block a remote node's expiration may be: its head may be a
/// few blocks ahead of the one we read.
pub const REMOTE_EXPIRATION_SLACK_MS: i64 = 30_000;

/// Where the raw transaction comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuildMode {
    /// Built here from the head block (the default, pools-payouts.md §7).
    #[default]
    Local,
    /// Built by the full node (`triggersmartcontract`), verified field by field before signing.
    RemoteTrigger,
}

/// Settings of the TRON rail (`tron.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TronRailConfig {
    /// The USDT-TRC20 contract (`tron.usdt_contract`).
    pub usdt_contract: TronAddress,
    /// `tron.fee_limit_max_sun` (100 TRX by default).
    pub fee_limit_max_sun: u64,
    /// `tron.tx_expiration` in ms (60 s by default, below 24 h).
    pub tx_expiration_ms: i64,
    /// Where the raw transaction comes from.
    pub build: BuildMode,
}

impl TronRailConfig {
    /// The defaults of pools-payouts.md §9 for `usdt_contract`.
    pub fn new(usdt_contract: TronAddress) -> Self {
        TronRailConfig {
            usdt_contract,
            fee_limit_max_sun: DEFAULT_FEE_LIMIT_MAX_SUN,
            tx_expiration_ms: DEFAULT_EXPIRATION_MS,
            build: BuildMode::Local,
        }
    }
}

/// The TRON payout rail.
pub struct TronRail {
    client: TronClient,
    key: HotWalletKey,
    config: TronRailConfig,
}

impl std::fmt::Debug for TronRail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TronRail")
            .field("hot_wallet", &self.key.address())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn address(bytes: [u8; 21], what: &'static str) -> Result<TronAddress, Error> {
    TronAddress::from_bytes(bytes).map_err(|source| Error::Address { what, source })
}

impl TronRail {
    /// A rail paying from `key`'s address; refuses an expiration outside (0, 24 h) and a
    /// contract equal to the hot wallet.
    pub fn new(
        client: TronClient,
        key: HotWalletKey,
        config: TronRailConfig,
    ) -> Result<Self, Error> {
        if config.tx_expiration_ms <= 0 || config.tx_expiration_ms >= MAX_EXPIRATION_MS {
            return Err(Error::Transaction { reason: "tron.tx_expiration must be in (0, 24 h)" });
        }
        if config.usdt_contract == key.address() {
            return Err(Error::Transaction { reason: "the USDT contract is the hot wallet" });
        }
        Ok(TronRail { client, key, config })
    }

    /// The hot wallet's address.
    pub fn hot_wallet(&self) -> TronAddress {
        self.key.address()
    }

    async fn fee_limit(
        &self,
        to: &TronAddress,
        amount: MicroUsdt,
        price: u64,
    ) -> Result<u64, Error> {
        let owner = self.key.address();
        let contract = self.config.usdt_contract;
        let energy = self.client.estimate_transfer_energy(&owner, &contract, to, amount).await?;
        fee_limit_sun(energy, price, self.config.fee_limit_max_sun)
    }

    /// Builds and signs one transfer (see the module doc).
    async fn sign(&self, intent: &TransferIntent) -> Result<SignedTransfer, Error> {
        let to = address(intent.to_address, "destination")?;
        let owner = self.key.address();
        let contract = self.config.usdt_contract;
        let head = self.client.now_block().await?;
        let price = self.client.energy_fee().await?;
        let fee_limit_sun = self.fee_limit(&to, intent.net, price).await?;
        let expiration = head.timestamp.saturating_add_ms(self.config.tx_expiration_ms);
        let params = TransferParams {
            owner,
            contract,
            to,
            amount: intent.net,
            reference: head.reference,
            timestamp: head.timestamp,
            expiration,
            fee_limit_sun,
        };
        match self.config.build {
            BuildMode::Local => tx::sign_transfer(&self.key, &params),
            BuildMode::RemoteTrigger => {
                let raw = self
                    .client
                    .trigger_transfer(&owner, &contract, &to, intent.net, fee_limit_sun)
                    .await?;
                self.sign_remote(&raw, &params, head.timestamp)
            }
        }
    }

    /// Signs a node-built transaction only if it is exactly `params`' transfer; its expiration
    /// (chosen by the node) must lie after our head block and within our expiration setting.
    fn sign_remote(
        &self,
        raw: &[u8],
        params: &TransferParams,
        head_time: UnixMillis,
    ) -> Result<SignedTransfer, Error> {
        let remote_expiration = tx::raw_expiration(raw)?;
        let latest = head_time
            .saturating_add_ms(self.config.tx_expiration_ms)
            .saturating_add_ms(REMOTE_EXPIRATION_SLACK_MS);
        if remote_expiration <= head_time || remote_expiration > latest {
            return Err(Error::RemoteTransaction { field: "expiration" });
        }
        let expected = tx::ExpectedTransfer {
            expiration: remote_expiration,
            ..tx::ExpectedTransfer::from(params)
        };
        let unsigned = tx::verify_remote_tx(raw, &expected)?;
        let signature = self.key.sign_txid(&unsigned.txid.0)?;
        Ok(SignedTransfer {
            txid: unsigned.txid,
            raw: unsigned.raw,
            signature,
            expiration: remote_expiration,
            fee_limit_sun: params.fee_limit_sun,
        })
    }
}

#[async_trait]
impl PayoutRail for TronRail {
    fn kind(&self) -> RailKind {
        RailKind::Tron
    }

    async fn preflight(&self, batch: &[TransferIntent]) -> Result<Preflight, Error> {
        let owner = self.key.address();
        let usdt_needed = batch
            .iter()
            .try_fold(MicroUsdt(0), |sum, intent| sum.0.checked_add(intent.net.0).map(MicroUsdt));
        let usdt_needed = usdt_needed.ok_or(lucid_core::internal!("Σ net of a batch overflows"))?;
        let usdt_available = self.client.usdt_balance(&self.config.usdt_contract, &owner).await?;
        let trx_balance = self.client.trx_balance(&owner).await?;
        let resource = self.client.account_resource(&owner).await?;
        let price = self.client.energy_fee().await?;
        let free_energy_sun = resource.free_energy().saturating_mul(price);
        let trx_available_sun = trx_balance.saturating_add(free_energy_sun);
        let wallet = Some(HotWallet { usdt: usdt_available, trx_sun: trx_balance });
        let low = |trx_needed_sun| Preflight::HotWalletLow {
            usdt_needed,
            usdt_available,
            trx_needed_sun,
            trx_available_sun,
            wallet,
        };
        if usdt_available < usdt_needed {
            // A dry run of a transfer the wallet cannot cover would revert: report, don't estimate.
            return Ok(low(0));
        }
        let mut trx_needed_sun = 0u64;
        for intent in batch {
            let to = address(intent.to_address, "destination")?;
            let limit = self.fee_limit(&to, intent.net, price).await?;
            trx_needed_sun = trx_needed_sun.saturating_add(limit);
        }
        if trx_available_sun < trx_needed_sun {
            return Ok(low(trx_needed_sun));
        }
        Ok(Preflight::Ok { wallet })
    }

    async fn hot_wallet(&self) -> Result<Option<HotWallet>, Error> {
        let owner = self.key.address();
        let usdt = self.client.usdt_balance(&self.config.usdt_contract, &owner).await?;
        let trx_sun = self.client.trx_balance(&owner).await?;
        Ok(Some(HotWallet { usdt, trx_sun }))
    }

    async fn build_and_sign(&self, intent: &TransferIntent) -> Result<StoredTransfer, Error> {
        let signed = self.sign(intent).await?;
        Ok(StoredTransfer {
            txid: signed.txid.0,
            raw: signed.raw,
            signature: signed.signature.as_bytes().to_vec(),
            expiration: signed.expiration,
            fee_limit_sun: signed.fee_limit_sun,
        })
    }

    async fn broadcast(&self, transfer: &StoredTransfer) -> BroadcastOutcome {
        let owner = self.key.address();
        match BroadcastBytes::from_stored(
            &transfer.txid,
            &transfer.raw,
            &transfer.signature,
            &owner,
        ) {
            Ok(bytes) => self.client.broadcast(&bytes).await,
            Err(error) => {
                // Corrupted stored bytes are never sent. Not a chain verdict either: the attempt
                // stays live and only the proven-dead rule ends it.
                tracing::error!(txid = %Txid(transfer.txid), %error, "stored attempt refused");
                BroadcastOutcome::Rejected(RejectCode::Other("LOCAL_INTEGRITY".to_owned()))
            }
        }
    }

    async fn status(
        &self,
        txid: &RawTxid,
        expected: &ExpectedTransfer,
    ) -> Result<ChainStatus, Error> {
        let to = address(expected.to_address, "destination")?;
        match self.client.lookup(&Txid(*txid)).await? {
            TxLookup::NotFound => Ok(ChainStatus::NotFound),
            TxLookup::Pending => Ok(ChainStatus::Pending),
            TxLookup::Solidified(info) => {
                let contract = self.config.usdt_contract;
                let called_contract = info.contract.is_none_or(|called| called == contract);
                let transfer_matches = called_contract
                    && info.has_transfer(&contract, &self.key.address(), &to, expected.net);
                Ok(ChainStatus::Solidified {
                    success: info.success,
                    transfer_matches,
                    block: info.block,
                    energy_used: info.energy_used,
                    fee_sun: info.fee_sun,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
