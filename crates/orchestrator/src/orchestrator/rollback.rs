//! Deploying a previous version back, restoring the backup a destructive migration needs.

use std::time::Duration;

use serin_signals::Timestamp;

use crate::config::{DeploymentConfig, StrategyKind, TrafficStrategyKind};
use crate::error::{Error, Result};
use crate::hooks::{BackupInfo, BackupProvider};
use crate::report::Report;
use crate::state::{DeploymentState, Outcome, StepStatus};

use super::{DeploymentHandle, Orchestrator, within};

impl Orchestrator {
    /// Deploys `version` of `service` back, by an immediate blue-green switch with the
    /// config's health gate and monitoring (the "rollback to version" of the brief).
    ///
    /// The database follows the code. A deployment's expand migrations run while the old
    /// version still serves, so they never stop it from working; its contract migrations run
    /// once the old version is gone and are destructive for it. When a deployment being undone
    /// (one that succeeded since `version` last ran, or got as far as its contract migrations
    /// before it failed) has a contract migration of a release above `version` carried out,
    /// handed to an operator, or tried (it may be partly carried out), the backup taken before
    /// the first deployment being undone is restored in preparation, after a fresh backup of
    /// the current database and the pre-upgrade steps (one that fails leaves the database as
    /// it was) and before any traffic moves. Without that backup, or without a
    /// backup provider, or when the backup no longer exists or the provider's
    /// [`Retention`](crate::backup::Retention) would delete it as the fresh backup is taken,
    /// the rollback is refused with the reason, and nothing changes. Should `version` then fail
    /// and the newer version serve again, it serves over the restored database: the deployment
    /// ends as failed, naming the fresh backup that holds the database it ran on.
    pub async fn rollback_to(
        &self,
        config: &DeploymentConfig,
        service: &str,
        version: semver::Version,
    ) -> Result<Report> {
        self.start_rollback_to(config, service, version)
            .await?
            .wait()
            .await
    }

    /// [`rollback_to`](Self::rollback_to), returning at once with a handle (for progress, or
    /// to abort it).
    pub async fn start_rollback_to(
        &self,
        config: &DeploymentConfig,
        service: &str,
        version: semver::Version,
    ) -> Result<DeploymentHandle> {
        let restore = self.restore_point(service, &version).await?;
        if let Some(id) = &restore {
            let Some(backup) = &self.inner.backup else {
                return Err(Error::conflict(
                    "rollback",
                    service,
                    "a backup must be restored (destructive migrations ran since that version), \
                     and no backup provider is configured",
                ));
            };
            let limit = config.max_deployment_duration;
            survives_fresh_backup(backup.as_ref(), service, id, limit).await?;
        }
        let mut c = config.clone();
        c.version = version;
        c.strategy = StrategyKind::BlueGreen;
        c.blue_green_config.traffic_strategy = TrafficStrategyKind::Immediate;
        c.target_services = vec![service.to_owned()];
        self.start_restoring(&c, service, restore).await
    }

    /// The backup a rollback of `service` to `version` must restore, if any: see
    /// [`rollback_to`](Self::rollback_to). Refuses (an error) when one is needed and none exists.
    async fn restore_point(
        &self,
        service: &str,
        version: &semver::Version,
    ) -> Result<Option<String>> {
        let moved = self.moved(service).await?;
        // The deployments being undone: those after the last one that left `version` running,
        // or else those since `version` was last replaced.
        let start = match moved.iter().rposition(|d| &d.to.version == version) {
            Some(i) => i + 1,
            None => moved
                .iter()
                .rposition(|d| d.from.as_ref().is_some_and(|f| &f.version == version))
                .unwrap_or(moved.len()),
        };
        let undone = &moved[start.min(moved.len())..];
        // A contract migration is destructive for the versions below its release (one
        // journalled without its release, for every version).
        let destructive = undone.iter().find_map(|d| {
            contracts_reached(d)
                .find(|s| {
                    s.step
                        .release
                        .as_ref()
                        .is_none_or(|release| version < release)
                })
                .map(|s| (d, s))
        });
        let Some((d, step)) = destructive else {
            return Ok(None);
        };
        let first = &undone[0];
        match &first.backup {
            Some(id) => Ok(Some(id.clone())),
            None => Err(Error::conflict(
                "rollback",
                service,
                format!(
                    "deployment {} ran a destructive migration ({}: {}) and deployment {} took no \
                     backup to restore; restore the database by hand, then deploy {version}",
                    d.id, step.status, step.step.text, first.id
                ),
            )),
        }
    }

    /// Deploys back the version that ran before the last successful deployment of `service`
    /// (or the last that got as far as its contract migrations).
    pub async fn rollback(&self, config: &DeploymentConfig, service: &str) -> Result<Report> {
        let last = self.moved(service).await?.pop();
        let Some(version) = last.and_then(|d| d.from).map(|p| p.version) else {
            return Err(Error::not_found("previous version of service", service));
        };
        self.rollback_to(config, service, version).await
    }

    /// The final states of the deployments of `service` that moved it to their version, in
    /// the order they started: those that succeeded, and those that got as far as a contract
    /// migration (which runs once the old version is gone) before they failed or were
    /// abandoned.
    async fn moved(&self, service: &str) -> Result<Vec<DeploymentState>> {
        Ok(self
            .last_records()
            .await?
            .into_iter()
            .map(|r| r.state)
            .filter(|d| d.service == service && d.outcome.is_some())
            .filter(|d| {
                d.outcome.as_ref().is_some_and(Outcome::is_success)
                    || contracts_reached(d).next().is_some()
            })
            .collect())
    }
}

/// The contract migrations of `d`'s checklist that were reached: carried out, handed to an
/// operator, or tried and failed (a failed or cancelled one may be partly carried out).
fn contracts_reached(d: &DeploymentState) -> impl Iterator<Item = &crate::state::UpgradeStep> {
    d.checklist.iter().filter(|s| {
        s.step.kind == serin_compat::steps::StepKind::ContractMigration
            && matches!(
                s.status,
                StepStatus::Done | StepStatus::Due | StepStatus::Failed
            )
    })
}

/// Refuses a rollback whose restore point is gone, or would be: the rollback takes a fresh
/// backup before it restores, and the provider's retention must not expire the backup to restore.
///
/// Each call into the provider is given `limit` (the config's `maxDeploymentDuration`, which
/// bounds its calls in the deployment too) at most: a provider that does not answer refuses
/// the rollback then, rather than hold it up for ever.
async fn survives_fresh_backup(
    backup: &dyn BackupProvider,
    service: &str,
    id: &str,
    limit: Duration,
) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::conflict(
            "rollback",
            service,
            format!("backup {id} must be restored, but {why}; restore the database by hand"),
        ))
    };
    let provider = format!("backup provider `{}`", backup.name());
    match within(
        &provider,
        limit,
        &format!("reading backup {id}"),
        backup.info(id),
    )
    .await
    {
        Err(Error::NotFound { .. }) => return refuse("it no longer exists".to_owned()),
        Err(e @ Error::Timeout { .. }) => {
            return Err(Error::conflict(
                "rollback",
                service,
                format!(
                    "backup {id} must be restored, but whether it exists cannot be checked: \
                     {e}; try again"
                ),
            ));
        }
        _ => {}
    }
    let Some(retention) = backup.retention() else {
        return Ok(());
    };
    // A provider that enforces a retention must list what it keeps: were the rollback to go
    // on unchecked, the backup it takes first could expire the one it must restore.
    let listing = format!("listing the backups of {service}");
    let listed = within(&provider, limit, &listing, backup.list(service)).await;
    let mut kept = listed.map_err(|e| {
        Error::conflict(
            "rollback",
            service,
            format!(
                "backup {id} must be restored, but whether the backup taken first would make the \
                 retention (keepLast {}) delete it cannot be checked: {e}; try again",
                retention.keep()
            ),
        )
    })?;
    let Some(target) = kept
        .iter()
        .find(|b| b.id == id)
        .map(|b| (b.created_at, b.id.clone()))
    else {
        return Ok(());
    };
    let newer = kept
        .iter()
        .filter(|b| (b.created_at, &b.id) > (target.0, &target.1))
        .count();
    kept.push(BackupInfo::new(
        "",
        service,
        "",
        Timestamp::from_millis(u64::MAX),
    ));
    if retention.expired(&kept).iter().any(|b| b.id == id) {
        return refuse(format!(
            "the backup taken first would make the retention (keepLast {}) delete it: {newer} \
             newer backups of {service} exist; raise keepLast to at least {}",
            retention.keep(),
            newer + 2
        ));
    }
    Ok(())
}
