-- loopledger 1.0: append-only, hash-chained ledger tables.
\echo Use "CREATE EXTENSION loopledger" to load this file. \quit

-- The C code finds its catalogs by the schema's name: a schema "ledger"
-- made beforehand by a role that is not a superuser could be renamed and
-- replaced by that role later (with forged clearances, say), and objects
-- waiting in it would be taken for ours.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
			   JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
			   WHERE n.nspname = 'ledger' AND NOT r.rolsuper)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n,
				  pg_catalog.aclexplode(n.nspacl) a
				  JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
				  WHERE n.nspname = 'ledger' AND a.privilege_type = 'CREATE' AND NOT r.rolsuper)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n,
				  pg_catalog.aclexplode(n.nspacl) a
				  WHERE n.nspname = 'ledger' AND a.privilege_type = 'CREATE' AND a.grantee = 0)
	THEN
		RAISE EXCEPTION 'schema "ledger" is owned by, or open to, a role that is not a superuser'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'loopledger keeps its catalogs in schema "ledger"; whoever owns it or may create objects in it could replace them.',
				  HINT = 'Drop the schema (or give it to a superuser and revoke CREATE on it) before CREATE EXTENSION loopledger.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = 'ledger'::pg_catalog.regnamespace)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE pronamespace = 'ledger'::pg_catalog.regnamespace)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typnamespace = 'ledger'::pg_catalog.regnamespace)
	THEN
		RAISE EXCEPTION 'schema "ledger" already holds objects'
			USING ERRCODE = 'duplicate_schema',
				  DETAIL = 'loopledger must create every object in schema "ledger" itself.',
				  HINT = 'Drop or empty the schema before CREATE EXTENSION loopledger.';
	END IF;
END
$$;

-- ---------------------------------------------------------------------
-- Catalogs.  All are extension configuration tables so pg_dump keeps
-- their rows; clients may read them but only the extension writes them.
-- ---------------------------------------------------------------------

CREATE TABLE ledger.channel (
	channel_id	integer PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	tiers		text[] NOT NULL,
	config_hash	bytea NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger.ledger_table (
	relid		regclass PRIMARY KEY,	-- dumped by name, so restores map
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	table_no	integer NOT NULL,		-- number used inside block payloads
	table_name	text NOT NULL,			-- qualified name hashed into entries
	tier_column	name,
	enabled_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (channel_id, table_no)
);

-- One row per sealed block.  "entries" packs, per row in block order:
-- u64 entry | u32 table_no | u8 tier | u8 flags | commitment[32] | salt[16].
CREATE TABLE ledger.block (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	height		bigint NOT NULL,
	prev_hash	bytea NOT NULL,
	merkle_root	bytea NOT NULL,
	time_us		bigint NOT NULL,
	tx_count	integer NOT NULL,
	row_count	integer NOT NULL,
	config_hash	bytea NOT NULL,
	block_hash	bytea NOT NULL,
	min_entry	bigint,
	max_entry	bigint,
	entries		bytea NOT NULL,
	PRIMARY KEY (channel_id, height)
);
CREATE INDEX block_entry_range ON ledger.block (channel_id, min_entry);
-- Hashes and salts do not compress: do not let TOAST try.
ALTER TABLE ledger.block ALTER COLUMN entries SET STORAGE EXTERNAL;
-- a block of up to about 120 rows stays one heap tuple, without TOAST inserts
ALTER TABLE ledger.block SET (toast_tuple_target = 8160);

-- Committed transactions' rows waiting to be sealed, one row per
-- transaction and channel, same packing as ledger.block.entries.
CREATE TABLE ledger.pending (
	channel_id	integer NOT NULL,
	entries		bytea NOT NULL,
	txid		bigint			-- multi-peer channels: waits for its agreed block
);
ALTER TABLE ledger.pending ALTER COLUMN entries SET STORAGE EXTERNAL;
-- Every record is deleted right after it is sealed: vacuum early so the
-- worker's scans stay short under load.
ALTER TABLE ledger.pending SET (autovacuum_vacuum_scale_factor = 0,
								autovacuum_vacuum_threshold = 1000,
								autovacuum_vacuum_cost_delay = 0);

-- Cached per session: entry numbers only need to be unique, and COPY of
-- a million rows should not take a million sequence locks.
CREATE SEQUENCE ledger.entry_seq CACHE 1000;
CREATE SEQUENCE ledger.channel_seq;

SELECT pg_catalog.pg_extension_config_dump('ledger.channel', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.ledger_table', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.block', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.pending', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.entry_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.channel_seq', '');

REVOKE ALL ON ALL TABLES IN SCHEMA ledger FROM PUBLIC;
GRANT USAGE ON SCHEMA ledger TO PUBLIC;
-- The ledger_entry default draws from this sequence; explicit values are
-- refused at parse analysis (see src/guard.c).
GRANT USAGE ON SEQUENCE ledger.entry_seq TO PUBLIC;
GRANT SELECT ON ledger.channel, ledger.ledger_table TO PUBLIC;
-- Not the packed entries: they hold every row's salt (see src/chain.h);
-- ledger.block_entries() shows them, salts only up to the caller's clearance.
GRANT SELECT (channel_id, height, prev_hash, merkle_root, time_us, tx_count, row_count,
			  config_hash, block_hash, min_entry, max_entry) ON ledger.block TO PUBLIC;

-- ---------------------------------------------------------------------
-- Hash helpers (the same pure-C code as the offline verifier).
-- ---------------------------------------------------------------------

CREATE FUNCTION ledger.config_hash(channel text, tiers text[])
RETURNS bytea AS 'MODULE_PATHNAME', 'll_config_hash_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION ledger.header_hash(channel text, height bigint, prev_hash bytea,
	merkle_root bytea, time_us bigint, tx_count integer, row_count integer,
	config_hash bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'll_header_hash_sql'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- ---------------------------------------------------------------------
-- Triggers installed on every ledger table.
-- ---------------------------------------------------------------------

CREATE FUNCTION ledger.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'll_capture' LANGUAGE C;

CREATE FUNCTION ledger.refuse_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'll_refuse_change' LANGUAGE C;

-- The extension's own catalogs are append-only too (only the sealing
-- worker and the DBA functions write them).
CREATE FUNCTION ledger.refuse_catalog_change() RETURNS trigger
AS 'MODULE_PATHNAME', 'll_refuse_catalog_change' LANGUAGE C;

CREATE TRIGGER block_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON ledger.block FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_catalog_change();
CREATE TRIGGER channel_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON ledger.channel FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_catalog_change();
CREATE TRIGGER ledger_table_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
	ON ledger.ledger_table FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_catalog_change();

-- Blocks a DBA learned out of band (ledger.trust_checkpoint): the
-- consensus worker refuses to apply a block built at one of these heights
-- with another hash (src/apply.c).  A node catching up checks every
-- certificate against the validators of its height, so only a checkpoint
-- protects it from a history certified with the keys of an old validator
-- set, retired and leaked.
CREATE TABLE ledger.checkpoint (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	block_height bigint NOT NULL,
	block_hash	bytea NOT NULL,
	trusted_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (channel_id, block_height)
);
SELECT pg_catalog.pg_extension_config_dump('ledger.checkpoint', '');
REVOKE ALL ON ledger.checkpoint FROM PUBLIC;
GRANT SELECT ON ledger.checkpoint TO PUBLIC;


-- ---------------------------------------------------------------------
-- DBA interface
-- ---------------------------------------------------------------------

CREATE FUNCTION ledger.create_channel(name text, tiers text[] DEFAULT '{public}')
RETURNS integer
AS 'MODULE_PATHNAME', 'll_create_channel' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.create_channel(text, text[]) IS
'create a channel (an independent chain) with ordered tiers, lowest first';

CREATE FUNCTION ledger.enable_table(tbl regclass, channel text, tier_column name DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'll_enable_table' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.enable_table(regclass, text, name) IS
'make a table an append-only ledger table of a channel; existing rows are chained in the next block';

CREATE FUNCTION ledger.verify(channel text)
RETURNS TABLE (block_height bigint, problem text)
AS 'MODULE_PATHNAME', 'll_verify' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.digest(channel text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'll_digest' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Trust a block learned out of band (from ledger.digest on a member one
-- trusts): this node's copy must hold exactly that block at that height.
CREATE FUNCTION ledger.trust_checkpoint(channel text, block_height bigint, block_hash text)
RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ch integer;
	want bytea;
	have bytea;
BEGIN
	SELECT c.channel_id INTO ch FROM ledger.channel c WHERE c.name = trust_checkpoint.channel;
	IF ch IS NULL THEN
		RAISE EXCEPTION 'ledger channel "%" does not exist', trust_checkpoint.channel
			USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM ledger.peer p WHERE p.channel_id = ch) THEN
		RAISE EXCEPTION 'ledger channel "%" has no peers', trust_checkpoint.channel
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Its blocks are sealed on this server alone; a checkpoint guards a copy taken from other members.';
	END IF;
	IF trust_checkpoint.block_height < 1 THEN
		RAISE EXCEPTION 'invalid checkpoint height %', trust_checkpoint.block_height
			USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Block heights start at 1.';
	END IF;
	IF trust_checkpoint.block_hash !~ '^[0-9a-fA-F]{64}$' THEN
		RAISE EXCEPTION 'invalid checkpoint hash "%"', trust_checkpoint.block_hash
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A block hash is 64 hexadecimal digits, as block_hash in ledger.digest().';
	END IF;
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'ledger.trust_checkpoint() runs at READ COMMITTED isolation only'
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'It must see the block a concurrent apply may just have committed.';
	END IF;
	want := decode(trust_checkpoint.block_hash, 'hex');
	-- no block is applied meanwhile: one committed before is seen below, one
	-- applied after is checked against the checkpoint by the worker
	LOCK TABLE ledger.block IN SHARE MODE;
	SELECT b.block_hash INTO have FROM ledger.block b
	 WHERE b.channel_id = ch AND b.height = trust_checkpoint.block_height;
	IF have IS NOT NULL AND have <> want THEN
		RAISE EXCEPTION 'ledger block % of channel "%" differs from the checkpoint',
			trust_checkpoint.block_height, trust_checkpoint.channel
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('This node holds block hash %s there.', encode(have, 'hex')),
				  HINT = 'This node''s copy is not the history the checkpoint names: rebuild it from a member you trust.';
	END IF;
	INSERT INTO ledger.checkpoint AS k (channel_id, block_height, block_hash)
	VALUES (ch, trust_checkpoint.block_height, want)
	ON CONFLICT ON CONSTRAINT checkpoint_pkey
	DO UPDATE SET block_hash = excluded.block_hash, trusted_at = now();
END
$$;
REVOKE ALL ON FUNCTION ledger.trust_checkpoint(text, bigint, text) FROM PUBLIC;

CREATE FUNCTION ledger.verify_digest(digest jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'll_verify_digest' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.proof(channel text, entry bigint, upto bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'll_proof' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

-- Checks a row disclosed by another member (the jsonb ledger.proof()
-- returns on its node) against this node's blocks: the row must hash to the
-- commitment stored here at the disclosure's block and position, and its
-- audit path lead to that block's Merkle root.  Works for entries held here
-- only as a commitment (redacted), which is what it is for.
CREATE FUNCTION ledger.verify_disclosure(disclosure jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'll_verify_disclosure' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION ledger.verify_disclosure(jsonb) TO PUBLIC;

-- Rows of every block of a channel, in chain order, then the committed
-- rows still waiting for a block (block_height NULL).  redacted: this node
-- holds only the row's commitment (it is not cleared for the row's tier);
-- such an entry has no salt here and no row in its table.
CREATE FUNCTION ledger.block_entries(channel text)
RETURNS TABLE (block_height bigint, "position" integer, entry bigint,
			   table_no integer, tier text, row_hash bytea, salt bytea,
			   committed_at timestamptz, redacted boolean)
AS 'MODULE_PATHNAME', 'll_block_entries' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Wait until every transaction committed before the call is sealed.
CREATE FUNCTION ledger.wait_sealed(timeout_ms integer DEFAULT 10000)
RETURNS boolean
AS 'MODULE_PATHNAME', 'll_wait_sealed' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.history(tbl regclass)
RETURNS TABLE (entry bigint, block_height bigint, "position" integer,
			   row_hash bytea, committed_at timestamptz, status text,
			   tier text, row_data jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t ledger.ledger_table;
	ch text;
BEGIN
	SELECT * INTO t FROM ledger.ledger_table lt WHERE lt.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not a ledger table', tbl
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Use ledger.enable_table() to make it one.';
	END IF;
	SELECT c.name INTO ch FROM ledger.channel c WHERE c.channel_id = t.channel_id;
	-- Read the table as the caller so row-level security applies.  Entries
	-- held here only as a commitment (redacted) have no row: they come
	-- from the chain alone, like what ledger.block shows to everyone.
	RETURN QUERY EXECUTE format(
		'WITH ledger_chain__ AS MATERIALIZED (
			SELECT * FROM ledger.block_entries($1) be WHERE be.table_no = $2)
		 SELECT * FROM (
			SELECT ledger_row__.ledger_entry, e.block_height, e."position", e.row_hash,
				   e.committed_at,
				   CASE WHEN e.entry IS NULL THEN ''uncommitted''
						WHEN e.block_height IS NULL THEN ''pending''
						ELSE ''sealed'' END,
				   e.tier,
				   to_jsonb(ledger_row__.*) - ''ledger_entry''
			  FROM %s ledger_row__
			  LEFT JOIN ledger_chain__ e
					 ON e.entry = ledger_row__.ledger_entry AND NOT e.redacted
			UNION ALL
			SELECT e.entry, e.block_height, e."position", e.row_hash, e.committed_at,
				   ''redacted'', e.tier, NULL::jsonb
			  FROM ledger_chain__ e WHERE e.redacted) h
		 ORDER BY h.block_height NULLS LAST, h."position", h.ledger_entry',
		tbl) USING ch, t.table_no;
END
$$;

-- ---------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------

CREATE VIEW ledger.channels AS
SELECT c.name AS channel, c.tiers, h.height, encode(h.block_hash, 'hex') AS head_hash,
	   to_timestamp(h.time_us / 1e6) AS head_time,
	   (SELECT count(*) FROM ledger.ledger_table t WHERE t.channel_id = c.channel_id) AS tables,
	   (SELECT coalesce(sum(b.row_count), 0) FROM ledger.block b WHERE b.channel_id = c.channel_id) AS sealed_rows,
	   c.created_at
  FROM ledger.channel c
  LEFT JOIN LATERAL (SELECT b.height, b.block_hash, b.time_us FROM ledger.block b
					  WHERE b.channel_id = c.channel_id
					  ORDER BY b.height DESC LIMIT 1) h ON true;

CREATE VIEW ledger.blocks AS
SELECT c.name AS channel, b.height, encode(b.block_hash, 'hex') AS block_hash,
	   encode(b.prev_hash, 'hex') AS prev_hash, encode(b.merkle_root, 'hex') AS merkle_root,
	   to_timestamp(b.time_us / 1e6) AS sealed_at, b.tx_count, b.row_count
  FROM ledger.block b JOIN ledger.channel c USING (channel_id);

CREATE VIEW ledger.tables AS
SELECT t.relid AS "table", c.name AS channel, t.tier_column, t.table_no, t.enabled_at
  FROM ledger.ledger_table t JOIN ledger.channel c USING (channel_id);

GRANT SELECT ON ledger.channels, ledger.blocks, ledger.tables TO PUBLIC;

-- ---------------------------------------------------------------------
-- Peers and consensus (several organisations' databases share a channel)
-- ---------------------------------------------------------------------

-- Members of multi-peer channels.  since_height/until_height bound the
-- heights at which the member votes; genesis members have since_height 0.
-- conninfo is local knowledge (how this node reaches the peer) and is not
-- part of the channel's genesis.
CREATE TABLE ledger.peer (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	name		text NOT NULL,
	pubkey		bytea NOT NULL CHECK (length(pubkey) = 32),
	conninfo	text NOT NULL,
	clearance	text NOT NULL,
	since_height bigint,			-- NULL while a change is being agreed
	until_height bigint,
	remove_requested boolean NOT NULL DEFAULT false,
	clearance_requested text,		-- a clearance change being agreed
	genesis_clearance text,			-- as in the genesis (the chain id keeps it)
	requested_at timestamptz NOT NULL DEFAULT now(),
	login		name,				-- the role it logs in as here, if its own
	PRIMARY KEY (channel_id, name),
	UNIQUE (channel_id, pubkey)
);

-- Every consensus decision, with its commit certificate: an encoded
-- BLOCK_RESP consensus message (payload + certificate), which is exactly
-- what a lagging peer needs to verify it.
CREATE TABLE ledger.consensus_log (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	height		bigint NOT NULL,
	decision	bytea NOT NULL,
	ledger_height bigint,			-- ledger block made from it, if any
	PRIMARY KEY (channel_id, height)
);
ALTER TABLE ledger.consensus_log ALTER COLUMN decision SET STORAGE EXTERNAL;
-- decisions and batches are written once per block by the worker: keep
-- the usual ones inline (one heap tuple, no TOAST table and index insert)
ALTER TABLE ledger.consensus_log SET (toast_tuple_target = 8160);

-- Signed transaction batches referenced by decided payloads.
CREATE TABLE ledger.batch (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	batch_hash	bytea NOT NULL,
	height		bigint NOT NULL,
	body		bytea NOT NULL,
	PRIMARY KEY (channel_id, batch_hash)
);
CREATE INDEX batch_height ON ledger.batch (channel_id, height);
ALTER TABLE ledger.batch ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE ledger.batch SET (toast_tuple_target = 8160);

-- Outcome of every ordered transaction: applied exactly once, so a
-- transaction proposed again after a leader change is skipped everywhere.
-- Its ledger block is consensus_log.ledger_height of the same height.
CREATE TABLE ledger.txlog (
	channel_id	integer NOT NULL,
	origin		bytea NOT NULL,
	txid		bigint NOT NULL,
	height		bigint,
	"position"	integer,
	status		text NOT NULL,
	detail		text,
	-- highest tier of its rows (NULL: none); a role cleared below it does
	-- not see the outcome, whose detail may name the rows' values
	tier		smallint,
	PRIMARY KEY (channel_id, origin, txid)
);

-- Members' requests to add or remove a member, as decided blocks carried
-- them; a change takes effect when a quorum of members asked for it.
CREATE TABLE ledger.member_vote (
	channel_id	integer NOT NULL,
	height		bigint NOT NULL,
	voter		bytea NOT NULL,
	op			text NOT NULL CHECK (op IN ('add', 'remove')),
	pubkey		bytea NOT NULL,
	name		text NOT NULL,
	clearance	text NOT NULL,
	-- no longer pending: decided, moot, lapsed, or its voter gone; the
	-- pending rows are exactly the votes the worker counts (membership.c)
	decided		boolean NOT NULL DEFAULT false
);

-- Each member's clearance by height, as agreed through the chain: a
-- change decided by the block of height h holds from h + 1 (membership.c).
-- Catch-up serves a member each height redacted to the clearance it had
-- there, which is what it was sent then: one that was down while its
-- clearance changed can still fetch the heights before the change.
CREATE TABLE ledger.peer_clearance (
	channel_id	integer NOT NULL,
	pubkey		bytea NOT NULL,
	from_height	bigint NOT NULL,
	clearance	text NOT NULL,
	PRIMARY KEY (channel_id, pubkey, from_height)
);

-- Two signed, conflicting votes of one validator.
CREATE TABLE ledger.evidence (
	channel_id	integer NOT NULL,
	validator	text NOT NULL,
	height		bigint NOT NULL,
	round		integer NOT NULL,
	vote_type	text NOT NULL,
	proof		bytea NOT NULL,
	recorded_at	timestamptz NOT NULL DEFAULT now()
);

-- Each member's declared definition of a multi-peer channel's ledger
-- tables (its worker declares ledger.table_fingerprint() through the
-- chain), and the definition agreed once 2f+1 of the validators declared
-- the same one (tabledef.c).  A table's rows are taken only once agreed;
-- a member whose table matches the agreed definition may then judge a
-- row's content alone, since every such member judges it alike.
CREATE TABLE ledger.table_vote (
	channel_id	integer NOT NULL,
	table_name	text NOT NULL,
	voter		bytea NOT NULL,
	fingerprint	bytea NOT NULL,
	height		bigint NOT NULL,
	PRIMARY KEY (channel_id, table_name, voter)
);
CREATE TABLE ledger.agreed_table (
	channel_id	integer NOT NULL,
	table_name	text NOT NULL,
	fingerprint	bytea NOT NULL,
	since_height bigint NOT NULL,	-- first height whose rows it judges
	PRIMARY KEY (channel_id, table_name)
);

SELECT pg_catalog.pg_extension_config_dump('ledger.peer', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.consensus_log', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.batch', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.txlog', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.evidence', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.member_vote', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.peer_clearance', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.table_vote', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.agreed_table', '');
REVOKE ALL ON ledger.peer, ledger.consensus_log, ledger.batch, ledger.txlog,
	ledger.evidence, ledger.member_vote, ledger.peer_clearance, ledger.table_vote,
	ledger.agreed_table FROM PUBLIC;
GRANT SELECT ON ledger.txlog, ledger.evidence, ledger.table_vote, ledger.agreed_table TO PUBLIC;

-- Peers connect as this role; it may only hand over messages and read
-- decided blocks.  Created here when missing so a fresh node works.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'loopledger_peer') THEN
		CREATE ROLE loopledger_peer LOGIN;
	END IF;
END
$$;

CREATE FUNCTION ledger.node_key()
RETURNS text
AS 'MODULE_PATHNAME', 'll_node_key' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.node_key() IS
'this node''s Ed25519 public key (hex); the private key is created once in the data directory';

CREATE FUNCTION ledger.add_peer(channel text, name text, conninfo text, pubkey text,
								clearance text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'll_add_peer' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.remove_peer(channel text, name text)
RETURNS void
AS 'MODULE_PATHNAME', 'll_remove_peer' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Change a member's clearance: before the first block directly (it is
-- part of the genesis), afterwards as a membership change every member
-- asks for (ledger.peers shows the request until it is decided).
-- The role a member logs in as to this server, when it has one of its own:
-- calls over that login may then only speak for that member, and each
-- member's share of the worker's inbox holds.  This node's own setting.
CREATE FUNCTION ledger.set_peer_login(channel text, name text, login name)
RETURNS void
AS 'MODULE_PATHNAME', 'll_set_peer_login' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

-- A peer's connection string, this node's own setting (also for members
-- it did not add itself, which it has none for); the worker reconnects.
CREATE FUNCTION ledger.set_peer_conninfo(channel text, name text, conninfo text)
RETURNS void
AS 'MODULE_PATHNAME', 'll_set_peer_conninfo' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.set_peer_clearance(channel text, name text, clearance text)
RETURNS void
AS 'MODULE_PATHNAME', 'll_set_peer_clearance' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.genesis_hash(channel text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'll_genesis_hash_sql' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Incoming peer messages (called over libpq by peer workers).
CREATE FUNCTION ledger.deliver(channel text, sender bytea, frames bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'll_deliver' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Who is reading: a member's signed read token (src/redact.c).  Returns
-- the tier index up to which it may read content.
CREATE FUNCTION ledger.reader_clearance(channel text, requester bytea, at_ms bigint, sig bytea)
RETURNS integer
AS 'MODULE_PATHNAME', 'll_reader_clearance' LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- A stored batch with the content of rows above max_tier withheld.
CREATE FUNCTION ledger.redact_batch(body bytea, max_tier integer)
RETURNS bytea
AS 'MODULE_PATHNAME', 'll_redact_batch' LANGUAGE C STRICT IMMUTABLE
SET search_path = pg_catalog, pg_temp;

-- Decided blocks with their certificates and batches, for catch-up.  The
-- caller verifies every certificate and signature, so these only read;
-- batches leave redacted to the clearance of the member who signed the
-- read token.
-- The last height whose content a member may read: a removed member's
-- ends with the block that removed it, decided BFT_VALSET_DELAY (2, see
-- src/bft.h) heights before until_height; it was a member until then.
CREATE FUNCTION ledger.reader_last_height(channel text, requester bytea)
RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT coalesce(min(p.until_height) - 2, 9223372036854775807)
	  FROM ledger.peer p JOIN ledger.channel c USING (channel_id)
	 WHERE c.name = $1 AND p.pubkey = $2
$$;
REVOKE ALL ON FUNCTION ledger.reader_last_height(text, bytea) FROM PUBLIC;

-- The tier index up to which a member may read the content of height h:
-- the higher of now_tier (what ledger.reader_clearance gave: a raised
-- clearance reaches back, see disclosure in src/catchup.c) and its
-- clearance at h (ledger.peer_clearance; before any change, the genesis
-- one, or for a member admitted later the first one agreed for it, which
-- a node following the chain before its admission judges old heights at).
-- So a member that was down while its clearance was lowered still gets
-- the heights before the change as it was sent them, and can catch up.
CREATE FUNCTION ledger.reader_tier_at(channel_id integer, requester bytea, h bigint, now_tier integer)
RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT coalesce((
		SELECT greatest(array_position(c.tiers, coalesce(
				(SELECT k.clearance FROM ledger.peer_clearance k
				  WHERE k.channel_id = $1 AND k.pubkey = $2 AND k.from_height <= $3
				  ORDER BY k.from_height DESC LIMIT 1),
				-- (not when a change is missing from the history: a copy
				-- restored from a build before it)
				CASE WHEN p.since_height = 0 AND (p.clearance = p.genesis_clearance OR EXISTS
						(SELECT 1 FROM ledger.peer_clearance k WHERE k.channel_id = $1 AND k.pubkey = $2))
					 THEN p.genesis_clearance END,
				(SELECT k.clearance FROM ledger.peer_clearance k
				  WHERE k.channel_id = $1 AND k.pubkey = $2 ORDER BY k.from_height LIMIT 1))) - 1,
			$4)
		  FROM ledger.channel c LEFT JOIN ledger.peer p ON p.channel_id = c.channel_id AND p.pubkey = $2
		 WHERE c.channel_id = $1), $4)
$$;
REVOKE ALL ON FUNCTION ledger.reader_tier_at(integer, bytea, bigint, integer) FROM PUBLIC;

CREATE FUNCTION ledger.decisions(channel text, from_height bigint, max_count integer,
								 requester bytea, at_ms bigint, sig bytea)
RETURNS TABLE (height bigint, decision bytea, batches bytea[])
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	WITH r AS MATERIALIZED (SELECT ledger.reader_clearance($1, $4, $5, $6) AS tier,
								   ledger.reader_last_height($1, $4) AS last),
	-- at most 64 heights, and none that starts past 64 MB of stored batches
	-- (the first always): the asker's libpq holds the whole answer
	h AS (SELECT l.channel_id, l.height, l.decision
			FROM ledger.consensus_log l JOIN ledger.channel c USING (channel_id)
		   WHERE c.name = $1 AND l.height >= $2
		   ORDER BY l.height LIMIT LEAST($3, 64)),
	l AS (SELECT h.*, sum(s.bytes) OVER (ORDER BY h.height) - s.bytes AS before
			FROM h, LATERAL (SELECT octet_length(h.decision) + coalesce(sum(octet_length(b.body)), 0) AS bytes
							   FROM ledger.batch b
							  WHERE b.channel_id = h.channel_id AND b.height = h.height) s)
	SELECT l.height, l.decision,
		   ARRAY(SELECT ledger.redact_batch(b.body, CASE WHEN l.height <= r.last
						 THEN ledger.reader_tier_at(l.channel_id, $4, l.height, r.tier) ELSE -1 END)
				   FROM ledger.batch b
				  WHERE b.channel_id = l.channel_id AND b.height = l.height)
	  FROM r, l
	 WHERE l.before < 64 * 1024 * 1024
	 ORDER BY l.height
$$;

CREATE FUNCTION ledger.batches(channel text, hashes bytea[],
							   requester bytea, at_ms bigint, sig bytea)
RETURNS SETOF bytea
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	WITH r AS MATERIALIZED (SELECT ledger.reader_clearance($1, $3, $4, $5) AS tier,
								   ledger.reader_last_height($1, $3) AS last)
	SELECT ledger.redact_batch(b.body, CASE WHEN b.height <= r.last
				THEN ledger.reader_tier_at(b.channel_id, $3, b.height, r.tier) ELSE -1 END)
	  FROM r, ledger.batch b JOIN ledger.channel c USING (channel_id)
	 WHERE c.name = $1 AND b.batch_hash = ANY ($2)
$$;

REVOKE ALL ON FUNCTION ledger.deliver(text, bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.reader_clearance(text, bytea, bigint, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.redact_batch(bytea, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.decisions(text, bigint, integer, bytea, bigint, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.batches(text, bytea[], bytea, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.deliver(text, bytea, bytea) TO loopledger_peer;
GRANT EXECUTE ON FUNCTION ledger.decisions(text, bigint, integer, bytea, bigint, bytea) TO loopledger_peer;
GRANT EXECUTE ON FUNCTION ledger.batches(text, bytea[], bytea, bigint, bytea) TO loopledger_peer;
REVOKE ALL ON FUNCTION ledger.node_key() FROM PUBLIC;

CREATE FUNCTION ledger.peer_status()
RETURNS TABLE (channel text, name text, state text, last_height bigint,
			   last_contact timestamptz, rtt_ms double precision, message text,
			   link_key boolean, mac_batches bigint, calls_replayed bigint)
AS 'MODULE_PATHNAME', 'll_peer_status' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger.consensus_status_raw()
RETURNS TABLE (channel text, height bigint, round integer, step text,
			   proposer text, validators integer, quorum integer,
			   ledger_height bigint, worker_pid integer,
			   signatures_made bigint, signatures_checked bigint,
			   votes_parked bigint, messages_rejected bigint,
			   last_error text, last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'll_consensus_status' LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE VIEW ledger.peers AS
SELECT c.name AS channel, p.name, p.pubkey, p.clearance,
	   CASE WHEN p.until_height IS NOT NULL THEN 'removed'
			WHEN p.remove_requested THEN 'removal requested'
			WHEN p.since_height IS NULL THEN 'joining'
			ELSE coalesce(s.state, 'unknown') END AS state,
	   s.last_height,
	   (SELECT cs.height FROM ledger.consensus_status_raw() cs WHERE cs.channel = c.name)
		 - s.last_height AS lag,
	   s.last_contact, s.rtt_ms, s.message, p.since_height, p.until_height,
	   p.clearance_requested, s.link_key, s.mac_batches, s.calls_replayed
  FROM ledger.peer p
  JOIN ledger.channel c USING (channel_id)
  LEFT JOIN ledger.peer_status() s ON s.channel = c.name AND s.name = p.name;

CREATE VIEW ledger.consensus_status AS
SELECT * FROM ledger.consensus_status_raw();

GRANT SELECT ON ledger.peers, ledger.consensus_status TO PUBLIC;

-- True when a constraint's stored expression (pg_constraint.conbin) calls
-- only immutable functions; used by enable_table on multi-peer channels.
CREATE FUNCTION ledger.constraint_is_immutable(constraint_oid oid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'll_constraint_is_immutable' LANGUAGE C STRICT STABLE
SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------------
-- Tiered visibility for local roles (see src/clearance.c).  Every ledger
-- table gets row-level security, enabled and forced, with one policy:
-- a role reads the rows whose tier is at or below its clearance.
-- ---------------------------------------------------------------------

-- The highest tier a role (and every member of it) may read in a channel.
-- role_name is the role's name when granted: a grant counts only while the
-- role still has that name, so a new role that reuses a dropped role's OID
-- inherits nothing (rename a role, and grant again).
CREATE TABLE ledger.clearance (
	channel_id	integer NOT NULL REFERENCES ledger.channel,
	role		regrole NOT NULL,		-- dumped by name, so restores map
	role_name	name NOT NULL,
	tier		text NOT NULL,
	granted_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (channel_id, role)
);

-- Whether roles without a clearance read a channel's lowest tier (the
-- default, when a channel has no row here) or nothing.  Kept apart from
-- ledger.channel, whose rows are append-only and hashed.
CREATE TABLE ledger.channel_visibility (
	channel_id	integer PRIMARY KEY REFERENCES ledger.channel,
	public		boolean NOT NULL,
	set_at		timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('ledger.clearance', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.channel_visibility', '');
GRANT SELECT ON ledger.clearance, ledger.channel_visibility TO PUBLIC;

-- Backends cache clearances; a change of either table flushes the caches.
CREATE FUNCTION ledger.clearance_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'll_clearance_changed' LANGUAGE C
SET search_path = pg_catalog, pg_temp;
CREATE TRIGGER clearance_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON ledger.clearance FOR EACH STATEMENT EXECUTE FUNCTION ledger.clearance_changed();
CREATE TRIGGER visibility_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON ledger.channel_visibility FOR EACH STATEMENT EXECUTE FUNCTION ledger.clearance_changed();
-- ... and so is the lowest clearance among a channel's members (peer.c).
CREATE TRIGGER peer_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON ledger.peer FOR EACH STATEMENT EXECUTE FUNCTION ledger.clearance_changed();
-- The consensus worker writes decided membership and clearance changes
-- with session_replication_role = replica: fire there too.
ALTER TABLE ledger.peer ENABLE ALWAYS TRIGGER peer_changed;
-- ... and whether a table's definition here is the agreed one (tabledef.c).
CREATE TRIGGER agreed_table_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON ledger.agreed_table FOR EACH STATEMENT EXECUTE FUNCTION ledger.clearance_changed();
ALTER TABLE ledger.agreed_table ENABLE ALWAYS TRIGGER agreed_table_changed;

-- What members of a multi-peer channel must agree on about a ledger
-- table: whatever decides whether its rows are taken, and how their
-- values read in: columns (type, collation, NOT NULL, generated
-- expression, compression, storage), what the database's default
-- collation is, constraints, every index (any index can refuse a
-- row: an expression that fails, an entry over the size limit), triggers
-- other than the ledger's own, the tier column.  Left out, as they decide
-- nothing: names of indexes and triggers, storage parameters, tablespaces,
-- whether a CHECK was validated for older rows.  Sorted bytewise, names
-- printed qualified (search_path is pg_catalog, then pg_temp: named last,
-- a session's temporary views cannot stand in for the catalogs while a
-- check runs as the owner), constants printed under
-- fixed settings: every member and every session computes the same text.
-- Function bodies a CHECK calls are not covered.  The consensus worker
-- turns sequential scans off for its own lookups; over small catalogs
-- without fitting indexes (pg_constraint.conindid) that made this a
-- hundred times slower.
--
-- definition_clause: a constraint's or index's definition without what
-- decides nothing about a new row: storage parameters (WITH (fillfactor
-- = ...)), its tablespace, NOT VALID (new rows are checked all the same).
-- Each is matched only where PostgreSQL prints it (before the
-- tablespace, the WHERE clause or the end), not inside a literal.
CREATE FUNCTION ledger.definition_clause(def text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET standard_conforming_strings = on AS $$
	SELECT regexp_replace(regexp_replace(regexp_replace(def,
		' WITH \((\w+=(''([^'']|'''')*''|[^,)'' ]+)(, )?)+\)(?=( USING INDEX TABLESPACE | WHERE |$))', ''),
		' USING INDEX TABLESPACE ("([^"]|"")*"|[^ "]+)(?=( WHERE |$))', ''),
		' NOT VALID$', '')
$$;

CREATE FUNCTION ledger.type_signature(typ oid, typmod integer) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp SET enable_seqscan = on
	SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
	SET extra_float_digits = 1 SET bytea_output = 'hex'
	SET standard_conforming_strings = on SET quote_all_identifiers = off AS $$
	SELECT format_type(typ, typmod) || CASE t.typtype
		WHEN 'e' THEN ' enum (' || coalesce((SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder)
											  FROM pg_enum WHERE enumtypid = typ), '') || ')'
		WHEN 'd' THEN ' domain (' || ledger.type_signature(t.typbasetype, t.typtypmod)
			|| CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
			|| coalesce((SELECT string_agg(' ' || x.def, '' ORDER BY x.def COLLATE "C")
						 FROM (SELECT ledger.definition_clause(pg_get_constraintdef(c.oid)) AS def
								 FROM pg_constraint c WHERE c.contypid = typ) x), '') || ')'
		ELSE '' END
	FROM pg_type t WHERE t.oid = typ
$$;

CREATE FUNCTION ledger.table_definition(tbl regclass) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp SET enable_seqscan = on
	SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
	SET extra_float_digits = 1 SET bytea_output = 'hex'
	SET standard_conforming_strings = on SET quote_all_identifiers = off AS $$
	SELECT concat_ws(E'\n', 'loopledger table definition 2',
		(SELECT string_agg(format('column %s %s%s%s%s%s%s', quote_ident(a.attname),
								  ledger.type_signature(a.atttypid, a.atttypmod),
								  CASE WHEN a.attcollation <> 0 THEN
									(SELECT ' collate ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname)
									   FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
									  WHERE co.oid = a.attcollation) ELSE '' END,
								  CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
								  CASE WHEN a.attgenerated <> '' THEN ' generated ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
								  CASE WHEN a.attcompression <> '' THEN ' compression ' || a.attcompression::text ELSE '' END,
								  CASE WHEN a.attstorage <> ty.typstorage THEN ' storage ' || a.attstorage::text ELSE '' END),
						   E'\n' ORDER BY a.attnum)
		   FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
				LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		  WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped),
		-- the collation "default" is whatever the database's is (also behind
		-- an expression such as intcol::text < 'm'); en_US.UTF-8 is en_US.utf8
		(SELECT 'default collation ' || regexp_replace(lower(concat_ws(' ', db.datlocprovider, db.datcollate,
																	   db.datctype, db.daticulocale)), 'utf-8', 'utf8', 'g')
		   FROM pg_database db WHERE db.datname = current_database()),
		(SELECT string_agg(x.def, E'\n' ORDER BY x.def COLLATE "C")
		   FROM (SELECT 'constraint ' || ledger.definition_clause(pg_get_constraintdef(c.oid)) AS def
				   FROM pg_constraint c WHERE c.conrelid = tbl AND c.contype IN ('c', 'f', 'p', 'u', 'x')) x),
		(SELECT string_agg(x.def, E'\n' ORDER BY x.def COLLATE "C")
		   FROM (SELECT CASE WHEN i.indisunique THEN 'unique index ' ELSE 'index ' END
						|| ledger.definition_clause(regexp_replace(pg_get_indexdef(i.indexrelid),
													'^CREATE (UNIQUE )?INDEX ("([^"]|"")*"|\S+) ON ', '')) AS def
				   FROM pg_index i
				  WHERE i.indrelid = tbl
					AND NOT EXISTS (SELECT 1 FROM pg_constraint c
									 WHERE c.conindid = i.indexrelid AND c.conrelid = tbl
									   AND c.contype IN ('p', 'u', 'x'))) x),
		(SELECT string_agg(x.def, E'\n' ORDER BY x.def COLLATE "C")
		   FROM (SELECT 'trigger ' || regexp_replace(pg_get_triggerdef(t.oid),
													 '^CREATE (CONSTRAINT )?TRIGGER ("([^"]|"")*"|\S+) ', '') AS def
				   FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
				  WHERE t.tgrelid = tbl AND NOT t.tgisinternal
					AND p.pronamespace <> 'ledger'::regnamespace) x),
		(SELECT 'tier column ' || quote_ident(tier_column) FROM ledger.ledger_table WHERE relid = tbl))
	WHERE EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl)
$$;

CREATE FUNCTION ledger.table_fingerprint(tbl regclass) RETURNS bytea
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
	SELECT sha256(convert_to(ledger.table_definition(tbl), 'UTF8'))
$$;

-- The ledger tables of multi-peer channels: this node's definition against
-- the agreed one.  state: agreed, differs here (this node stops at the
-- first of its rows it cannot take), missing here, or not agreed (rows
-- are refused until 2f+1 validators have declared one definition).
CREATE VIEW ledger.table_definitions AS
	SELECT c.name AS channel, x.table_name,
		   x.fingerprint AS local_fingerprint, a.fingerprint AS agreed_fingerprint,
		   a.since_height,
		   (SELECT count(*) FROM ledger.table_vote v
			 WHERE v.channel_id = c.channel_id AND v.table_name = x.table_name
			   AND v.fingerprint = x.fingerprint)::integer AS declared_by,
		   CASE WHEN a.fingerprint IS NULL THEN 'not agreed'
				WHEN x.fingerprint IS NULL THEN 'missing here'
				WHEN x.fingerprint = a.fingerprint THEN 'agreed'
				ELSE 'differs here' END AS state
	FROM (SELECT coalesce(t.channel_id, a.channel_id) AS channel_id,
				 coalesce(t.table_name, a.table_name) AS table_name,
				 ledger.table_fingerprint(t.relid) AS fingerprint
			FROM ledger.ledger_table t
			FULL JOIN ledger.agreed_table a ON a.channel_id = t.channel_id AND a.table_name = t.table_name) x
	JOIN ledger.channel c ON c.channel_id = x.channel_id
	LEFT JOIN ledger.agreed_table a ON a.channel_id = x.channel_id AND a.table_name = x.table_name
	WHERE EXISTS (SELECT 1 FROM ledger.peer p WHERE p.channel_id = x.channel_id);
GRANT SELECT ON ledger.table_definitions TO PUBLIC;

-- Called by the policy of every ledger table.  clearance_of: index of the
-- highest tier the session may read (lowest tier 0, none -1), the lower of
-- current_user's and session_user's; parallel restricted because workers
-- do not see the leader's session_user (the policy evaluates it once, in
-- the leader, as an initplan, so scans still run in parallel).
-- tier_index: index of a row's tier, NULL when it names no tier; with
-- inserting_into (WITH CHECK) a bad tier is an error naming that table.
CREATE FUNCTION ledger.clearance_of(channel_id integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'll_clearance_of' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

-- A transaction's outcome is seen by the roles that may see all its rows:
-- why it was refused can name their values (a key, a CHECK's message).
ALTER TABLE ledger.txlog ENABLE ROW LEVEL SECURITY;
CREATE POLICY txlog_clearance ON ledger.txlog FOR SELECT TO PUBLIC
	USING (coalesce(tier, 0) <= ledger.clearance_of(channel_id));

CREATE FUNCTION ledger.tier_index(channel_id integer, tier text, inserting_into text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'll_tier_index' LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION ledger.grant_clearance(channel text, role text, tier text)
RETURNS void
AS 'MODULE_PATHNAME', 'll_grant_clearance' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.grant_clearance(text, text, text) IS
'let a role and its members read rows of a channel up to a tier (superuser only)';

CREATE FUNCTION ledger.revoke_clearance(channel text, role text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'll_revoke_clearance' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.revoke_clearance(text, text) IS
'remove a role''s clearance in a channel; true when it had one (superuser only)';

CREATE FUNCTION ledger.set_channel_public(channel text, public boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'll_set_channel_public' LANGUAGE C
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION ledger.set_channel_public(text, boolean) IS
'whether roles without a clearance read the channel''s lowest tier (default true; superuser only)';

CREATE VIEW ledger.clearances AS
SELECT c.name AS channel, k.role_name AS role, k.tier, k.granted_at
  FROM ledger.clearance k JOIN ledger.channel c USING (channel_id)
 WHERE pg_catalog.pg_get_userbyid(k.role) = k.role_name;

GRANT SELECT ON ledger.clearances TO PUBLIC;

-- Proofs: for a caller whom row-level security applies to, an entry whose
-- row it cannot read gets the error of an entry that does not exist.
CREATE OR REPLACE FUNCTION ledger.proof(channel text, entry bigint, upto bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'll_proof_visible' LANGUAGE C
SET search_path = pg_catalog, pg_temp;


