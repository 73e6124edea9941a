-- Checkpoints learned out of band (ledger.trust_checkpoint): the input
-- checked and who may set them.  The multi-peer tests show a copy stopping
-- at one (multinode_basic) and a joining node reaching one
-- (multinode_membership).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(12);

SELECT ledger.create_channel('tap10_alone') \g /dev/null
SELECT ledger.create_channel('tap10', ARRAY['public', 'partner']) \g /dev/null
SELECT ledger.add_peer('tap10', 'other', 'host=x', repeat('1b', 32)) \g /dev/null

SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10_none', 1, repeat('0', 64))$$, '42704',
				 'ledger channel "tap10_none" does not exist', 'an unknown channel is refused');
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10_alone', 1, repeat('0', 64))$$, '55000',
				 'ledger channel "tap10_alone" has no peers', 'a channel without peers is refused');
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10', 0, repeat('0', 64))$$, '22023',
				 'invalid checkpoint height 0', 'height 0 is refused');
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10', 1, 'abcd')$$, '22023',
				 'invalid checkpoint hash "abcd"', 'a short hash is refused');
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10', 1, repeat('zz', 32))$$, '22023', NULL,
				 'a hash that is not hexadecimal is refused');
SELECT lives_ok($$SELECT ledger.trust_checkpoint('tap10', 5, repeat('AB', 32))$$,
				'a checkpoint for a height not reached yet is taken (upper-case hex too)');
SELECT lives_ok($$SELECT ledger.trust_checkpoint('tap10', 5, repeat('cd', 32))$$,
				'trusting a height again replaces its hash');
SELECT lives_ok($$SELECT ledger.trust_checkpoint('tap10', NULL, repeat('ef', 32))$$,
				'a NULL argument is no error (STRICT)');
SELECT is((SELECT string_agg(encode(block_hash, 'hex'), ',') FROM ledger.checkpoint k JOIN ledger.channel c USING (channel_id)
			WHERE c.name = 'tap10'), repeat('cd', 32), 'one checkpoint per height: the last one given');

BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10', 6, repeat('cd', 32))$$, '0A000',
				 'ledger.trust_checkpoint() runs at READ COMMITTED isolation only',
				 'refused above READ COMMITTED (it must see a block committed meanwhile)');
COMMIT;

CREATE ROLE tap10_user;
SET ROLE tap10_user;
SELECT throws_ok($$SELECT ledger.trust_checkpoint('tap10', 6, repeat('cd', 32))$$, '42501', NULL,
				 'trust_checkpoint is for superusers');
SELECT throws_ok($$DELETE FROM ledger.checkpoint$$, '42501', NULL, 'and so is dropping a checkpoint');
RESET ROLE;

SELECT * FROM finish();
