-- The SQL interface: channels, ledger tables, verify, digest, history, proof.
-- Run in the database served by the sealing worker, so blocks are sealed.
SELECT ledger.create_channel('rg_customs', ARRAY['public','partner','customs']) > 0 AS created;
SELECT channel, tiers, height, tables, sealed_rows FROM ledger.channels WHERE channel = 'rg_customs';

CREATE TABLE rg_declarations (id bigint PRIMARY KEY, hs_code text, value numeric(12,2),
                              importer text, tier text DEFAULT 'public');
INSERT INTO rg_declarations VALUES (100, '0101.21', 5000.00, 'Old Stock Ltd', 'partner');
SELECT ledger.enable_table('rg_declarations', 'rg_customs', tier_column => 'tier');
SELECT "table", channel, tier_column, table_no FROM ledger.tables WHERE channel = 'rg_customs';

-- plain SQL keeps working, RETURNING included
INSERT INTO rg_declarations VALUES (1, '8471.30', 1299.00, 'ACME', 'customs');
INSERT INTO rg_declarations (id, hs_code, value, importer)
VALUES (2, '6403.99', 89.90, 'Globex'), (3, '0901.21', 12.50, 'Initech')
RETURNING id, tier;
SELECT id, hs_code, value, importer, tier FROM rg_declarations ORDER BY id;

-- every row sealed (synchronous commit), chain intact
SELECT id, h.status, h.tier, h.block_height IS NOT NULL AS in_block,
       length(h.row_hash) AS hash_bytes
  FROM ledger.history('rg_declarations') h JOIN rg_declarations d ON d.ledger_entry = h.entry
 ORDER BY id;
SELECT * FROM ledger.verify('rg_customs');
SELECT height, tx_count, row_count FROM ledger.blocks WHERE channel = 'rg_customs' ORDER BY height;

-- digest and its check
SELECT jsonb_object_keys(ledger.digest('rg_customs')) AS key ORDER BY 1;
SELECT (ledger.digest('rg_customs')->>'height')::int AS digest_height;
SELECT ledger.verify_digest(ledger.digest('rg_customs')) AS digest_ok;
SELECT ledger.verify_digest(jsonb_set(ledger.digest('rg_customs'), '{block_hash}',
       to_jsonb(repeat('0', 64)))) AS forged_digest_ok;

-- proofs: keys, the row's canonical texts, leaf = history's row hash
SELECT jsonb_object_keys(ledger.proof('rg_customs', (SELECT ledger_entry FROM rg_declarations WHERE id = 1))) AS key
 ORDER BY 1;
SELECT c->>'name' AS name, c->>'value' AS value
  FROM jsonb_array_elements(ledger.proof('rg_customs',
       (SELECT ledger_entry FROM rg_declarations WHERE id = 1))->'columns') c;
SELECT p->>'leaf_hash' = encode(h.row_hash, 'hex') AS leaf_matches_history,
       (p->>'height')::bigint = h.block_height AS height_matches,
       jsonb_array_length(p->'blocks') >= 1 AS has_headers
  FROM rg_declarations d
  JOIN ledger.history('rg_declarations') h ON h.entry = d.ledger_entry
 CROSS JOIN LATERAL ledger.proof('rg_customs', d.ledger_entry) p
 WHERE d.id = 2;

-- the hash helpers agree with the stored chain
SELECT bool_and(ledger.header_hash('rg_customs', b.height, b.prev_hash, b.merkle_root, b.time_us,
                                   b.tx_count, b.row_count, b.config_hash) = b.block_hash) AS headers_rehash
  FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'rg_customs';
SELECT ledger.config_hash('rg_customs', ARRAY['public','partner','customs']) = config_hash AS config_matches
  FROM ledger.channel WHERE name = 'rg_customs';

-- a second, independent channel
SELECT ledger.create_channel('rg_couriers') > 0 AS created;
CREATE TABLE rg_pickups (parcel text, courier text);
SELECT ledger.enable_table('rg_pickups', 'rg_couriers');
INSERT INTO rg_pickups VALUES ('P-1', 'FastShip'), ('P-2', 'FastShip');
COPY rg_pickups (parcel, courier) FROM stdin;
P-10	QuickParcel
P-11	QuickParcel
\.
SELECT channel, height, tables, sealed_rows FROM ledger.channels
 WHERE channel IN ('rg_customs', 'rg_couriers') ORDER BY channel;
SELECT * FROM ledger.verify('rg_couriers');

-- rolled-back work leaves nothing in the chain
BEGIN;
INSERT INTO rg_pickups VALUES ('P-3', 'SlowShip');
ROLLBACK;
BEGIN;
INSERT INTO rg_pickups VALUES ('P-4', 'SlowShip');
SAVEPOINT s;
INSERT INTO rg_pickups VALUES ('P-5', 'SlowShip');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT parcel, h.status FROM ledger.history('rg_pickups') h JOIN rg_pickups p ON p.ledger_entry = h.entry
 ORDER BY parcel;
SELECT sealed_rows FROM ledger.channels WHERE channel = 'rg_couriers';
