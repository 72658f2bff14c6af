-- Analytics database, version 3: state for the snapshot-safe change scan and reconciliation.

-- The change scan no longer trusts the highest updated_at it saw (a transaction that commits
-- later can carry an older updated_at). It advances the watermark to the source's horizon: the
-- start of the oldest transaction still open there (sql/code/scan.sql). A transaction open
-- longer than max_txn_age no longer holds the horizon back; reconciliation catches what it
-- changes. lookback is now only an extra margin for applications that stamp updated_at with
-- their own clock, so it defaults to none.
ALTER TABLE refresh.settings
    ALTER COLUMN lookback SET DEFAULT '0',
    ADD COLUMN max_txn_age interval NOT NULL DEFAULT '1 hour',
    ADD COLUMN last_reconcile_at timestamptz,
    ADD COLUMN last_reconcile_drift bigint;
UPDATE refresh.settings SET lookback = '0' WHERE lookback = '5 minutes';

-- Reconciliation's verdicts, kept for operators: which merchant months drifted and when.
CREATE TABLE refresh.drift_log (
    checked_at  timestamptz NOT NULL DEFAULT now(),
    merchant_id bigint NOT NULL,
    month       date NOT NULL,
    PRIMARY KEY (checked_at, merchant_id, month)
);
