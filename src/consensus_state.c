/*
 * consensus_state.c
 *		The consensus worker's durable state: the core's persist record
 *		(what it last voted and locked), in two alternating checksummed
 *		slots of a file, fdatasync'ed before anything is sent.
 *
 * A file, not a table: the record is written before every vote, and a
 * vote must not wait on a transaction.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "port/pg_crc32c.h"
#include "storage/fd.h"

#include "consensus_int.h"
#include "loopledger.h"

typedef struct StateRecord
{
	uint64		seq;
	bft_persist st;
	pg_crc32c	crc;
} StateRecord;

/*
 * Named by the chain id, not the channel's number: a database rebuilt in
 * this data directory finds what it signed on that chain (and signs
 * nothing below it), and another chain that got the same number does not
 * inherit a record that would keep it from voting.
 */
void
state_open(void)
{
	char		path[MAXPGPATH];
	char		old[MAXPGPATH];
	char		hex[65];

	ll_hex_encode(W.chain_id, 32, hex);
	(void) MakePGDirectory("pg_loopledger");
	snprintf(path, sizeof(path), "pg_loopledger/chain_%s.state", hex);
	/*
	 * A build that named the file by channel number left it there: take it
	 * over (most likely this very chain; what it signed must not be lost).
	 */
	snprintf(old, sizeof(old), "pg_loopledger/channel_%d.state", W.channel_id);
	if (access(path, F_OK) != 0 && access(old, F_OK) == 0)
	{
		if (durable_rename(old, path, ERROR) == 0)
			ereport(LOG,
					(errmsg("channel \"%s\": consensus state file \"%s\" renamed to \"%s\"",
							W.channel, old, path)));
	}
	W.state_fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
	if (W.state_fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open consensus state file \"%s\": %m", path)));
}

/*
 * This worker's epoch for its hellos and link key: later than every epoch
 * an earlier worker of this channel used here, even if the clock was set
 * back (peers take only a later one, and would ignore this worker until
 * they restart), and durable before it is announced.
 */
uint64
next_epoch(void)
{
	char		path[MAXPGPATH];
	uint64		last = 0;
	uint64		epoch = (uint64) GetCurrentTimestamp();
	int			fd;

	(void) MakePGDirectory("pg_loopledger");
	snprintf(path, sizeof(path), "pg_loopledger/channel_%d.epoch", W.channel_id);
	fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open epoch file \"%s\": %m", path)));
	if (pg_pread(fd, &last, sizeof(last), 0) != sizeof(last))
		last = 0;
	if (epoch <= last)
		epoch = last + 1;
	if (pg_pwrite(fd, &epoch, sizeof(epoch), 0) != sizeof(epoch) || pg_fsync(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write epoch file \"%s\": %m", path)));
	close(fd);
	return epoch;
}

static pg_crc32c
record_crc(const StateRecord *r)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, r, offsetof(StateRecord, crc));
	FIN_CRC32C(crc);
	return crc;
}

bool
state_load(bft_persist *st)
{
	StateRecord r[2];
	int			best = -1;
	int			i;

	for (i = 0; i < 2; i++)
	{
		if (pg_pread(W.state_fd, &r[i], sizeof(StateRecord), i * sizeof(StateRecord)) !=
			sizeof(StateRecord) || !EQ_CRC32C(r[i].crc, record_crc(&r[i])))
			continue;
		if (best < 0 || r[i].seq > r[best].seq)
			best = i;
	}
	if (best < 0)
		return false;
	W.state_seq = r[best].seq;
	*st = r[best].st;
	if (st->height > W.next_height)
		ereport(WARNING,
				(errmsg("channel \"%s\": this node signed up to height " UINT64_FORMAT " of this chain before, and its copy is at height " UINT64_FORMAT,
						W.channel, st->height, W.next_height),
				 errdetail("It signs nothing below height " UINT64_FORMAT " (that could contradict what it signed), but follows the chain.",
						   st->height),
				 errhint("If the channel was created anew on purpose, the chain id is the same (it is the hash of the genesis): give the channel another name, or remove pg_loopledger/chain_*.state of this chain while the server is stopped.")));
	return true;
}

int
cb_persist(void *ctx, const bft_persist *st)
{
	StateRecord r;

	memset(&r, 0, sizeof(r));
	r.seq = ++W.state_seq;
	r.st = *st;
	r.crc = record_crc(&r);
	if (pg_pwrite(W.state_fd, &r, sizeof(r), (r.seq % 2) * sizeof(r)) != sizeof(r) ||
		pg_fdatasync(W.state_fd) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not persist consensus state: %m"),
				 errdetail("The node does not vote until it can.")));
		return -1;
	}
	return 0;
}

