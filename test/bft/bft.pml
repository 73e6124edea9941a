/*
 * bft.pml -- Promela model of the voting and locking rules of the core
 * (Algorithm 1 of "The latest gossip on BFT consensus", as in src/bft.c),
 * n = 4, f = 1: three honest processes and one Byzantine process, one
 * height, rounds 0 .. MAXR-1, two candidate values.
 *
 * Abstractions (each only adds behaviours, so agreement proven here holds
 * for the real rules):
 *  - asynchrony: votes go to a shared pool; a rule may fire as soon as the
 *    votes it needs exist, timeouts and round changes fire at any time;
 *  - the Byzantine process counts towards every quorum for every value
 *    (it equivocates to everybody);
 *  - every proposer is treated as possibly Byzantine: each honest process
 *    may see any value with any valid round, provided the POL it claims
 *    exists (an honest proposer's behaviour is one of these choices).
 *
 * Checked: agreement (assert at decision).  -DBROKEN_QUORUM (f+1 quorum)
 * and -DBROKEN_NO_LOCK (prevote ignoring the lock) must make spin fail.
 */
#define N 3
#ifndef MAXR
#define MAXR 3
#endif
/*
 * "not voted" and "voted nil" are merged: no rule needs to tell them apart
 * except the nil-polka and prevote-timeout rules, and precommitting nil is
 * allowed at any time in the prevote step (a timeout), which covers both.
 */
#define NONE 0
#define NIL 0
#define V0 1
#define V1 2
#ifdef BROKEN_QUORUM
#define Q 2
#else
#define Q 3
#endif

byte prevote[MAXR * N];		/* vote of honest i in round r at [r*N+i] */
byte precommit[MAXR * N];
byte decided[N];

inline count_pv(r, v, c) {
	c = 1 + (prevote[r*N+0] == v) + (prevote[r*N+1] == v) + (prevote[r*N+2] == v)
}
inline count_pc(r, v, c) {
	c = 1 + (precommit[r*N+0] == v) + (precommit[r*N+1] == v) + (precommit[r*N+2] == v)
}

proctype honest(byte me)
{
	byte round = 0;
	byte step = 1;			/* 1 propose, 2 prevote, 3 precommit */
	byte lockedR = 255;		/* 255 = -1 */
	byte lockedV = NONE;
	byte c, v, r, vr;		/* scratch, reset after use (smaller state) */

	do
	/* lines 22 (vr = -1) and 28 (vr >= 0 with its POL): prevote */
	:: atomic { step == 1 ->
		if :: v = V0 :: v = V1 fi;
		vr = 255;
		do
		:: (vr == 255 && round > 0) || (vr != 255 && vr + 1 < round) -> vr++
		:: break
		od;
		if
		:: vr != 255 ->
			count_pv(vr, v, c);
			c >= Q;
#ifdef BROKEN_NO_LOCK
			prevote[round*N+me] = v
#else
			if
			:: lockedR == 255 || lockedR <= vr || lockedV == v -> prevote[round*N+me] = v
			:: else -> prevote[round*N+me] = NIL
			fi
#endif
		:: vr == 255 ->
#ifdef BROKEN_NO_LOCK
			prevote[round*N+me] = v
#else
			if
			:: lockedR == 255 || lockedV == v -> prevote[round*N+me] = v
			:: else -> prevote[round*N+me] = NIL
			fi
#endif
		fi;
		step = 2; c = 0; v = 0; vr = 0 }
	/* line 57: timeout propose */
	:: atomic { step == 1 -> prevote[round*N+me] = NIL; step = 2 }
	/* line 36: polka for v in this round while in prevote: lock, precommit */
	:: atomic { step == 2 ->
		if :: v = V0 :: v = V1 fi;
		count_pv(round, v, c);
		c >= Q;
		lockedV = v; lockedR = round; precommit[round*N+me] = v; step = 3;
		c = 0; v = 0 }
	/* lines 44 and 61: nil polka or prevote timeout: precommit nil */
	:: atomic { step == 2 -> precommit[round*N+me] = NIL; step = 3 }
	/* line 49: decide on 2f+1 precommits for v in any round */
	:: atomic { decided[me] == NONE ->
		if :: v = V0 :: v = V1 fi;
		r = 0;
		do
		:: r + 1 < MAXR -> r++
		:: break
		od;
		count_pc(r, v, c);
		c >= Q;
		decided[me] = v;
		assert(decided[0] == NONE || decided[0] == v);
		assert(decided[1] == NONE || decided[1] == v);
		assert(decided[2] == NONE || decided[2] == v);
		break }
	/* line 65 / 55: timeout precommit or round skip */
	:: atomic { round + 1 < MAXR -> round++; step = 1 }
	od
}

init {
	atomic {
		run honest(0);
		run honest(1);
		run honest(2)
	}
}
