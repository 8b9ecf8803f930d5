/*
 * One end of a Xen shared ring, written with nothing but the real public headers'
 * structs and macros (xen/io/ring.h, netif.h, blkif.h, console.h), for
 * tests/xen/test_ring_interop.py: Python plays the other end over the same memory.
 *
 *   ring_peer layout
 *       print every size and offset the Python modules hard-code, as "name value" lines.
 *   ring_peer MODE PATH RING_BYTES START COUNT WAIT_FD KICK_FD
 *       MODE is {tx,rx,blk}-{front,back}.  PATH is a file of RING_BYTES bytes mapped
 *       shared; a front initialises the ring there with every index at START (0 is
 *       SHARED_RING_INIT exactly), a back attaches at START.  COUNT requests go through,
 *       each with fields computed from its number, checked by whichever end receives it;
 *       the back answers each with a response computed from the request's number, checked
 *       by the front.  WAIT_FD is the eventfd the peer kicks us on, KICK_FD the peer's.
 *       A front kicks once when the ring is initialised (xenbus's "Initialised"), then
 *       whenever RING_PUSH_REQUESTS_AND_CHECK_NOTIFY says so; a back whenever
 *       RING_PUSH_RESPONSES_AND_CHECK_NOTIFY says so.  Exit 0 and print
 *       "requests N responses N kicks K waits W" if every field matched.
 *   ring_peer blkdisk-front PATH RING_BYTES START COUNT WAIT_FD KICK_FD
 *       A blkfront doing real block I/O through a block backend (Fata's blkback engine
 *       on the Python end): PATH holds the ring, then DISK_DATA_PAGES data pages (grant
 *       references DISK_GREF + k) and one page for indirect segments (DISK_INDIRECT_GREF).
 *       COUNT rounds of writes (plain and indirect, segments of every shape), each read
 *       back and compared with a model of the disk, discards, flushes and requests the
 *       backend must refuse; then print "requests N refused R fnv H", H the FNV-1a hash
 *       of the model of the DISK_SECTORS-sector disk, for the back to compare with its own.
 *
 * The request and response formulas here and in test_ring_interop.py must agree.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Without __XEN_INTERFACE_VERSION__ ring.h maps xen_mb() and friends to these. */
#define mb()  __sync_synchronize()
#define rmb() __asm__ __volatile__("" ::: "memory")
#define wmb() __asm__ __volatile__("" ::: "memory")

#include <xen/io/blkif.h>
#include <xen/io/console.h>
#include <xen/io/netif.h>
#include <xen/io/ring.h>

static int wait_fd, kick_fd;
static unsigned long kicks, waits;

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define EXPECT(what, got, want) do {                                              \
    uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);                         \
    if (g_ != w_)                                                                 \
        FAIL("request %u: %s is %#" PRIx64 ", expected %#" PRIx64, i, what, g_, w_); \
} while (0)

static void kick(void)
{
    uint64_t one = 1;
    if (write(kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
        FAIL("kick: %s", strerror(errno));
    kicks++;
}

/* Sleep until the peer kicks: the event channel's pending bit, cleared on the way out. */
static void wait_for_kick(void)
{
    struct pollfd p = { .fd = wait_fd, .events = POLLIN };
    uint64_t n;
    int r = poll(&p, 1, 10000);
    if (r == 0)
        FAIL("no notification from the Python end in 10 s (a lost wake-up)");
    if (r < 0)
        FAIL("poll: %s", strerror(errno));
    if (read(wait_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        FAIL("read: %s", strerror(errno));
    waits++;
}

/* ---- the formulas: request i's fields and its response's ---------------------------- */

static void tx_request(unsigned i, netif_tx_request_t *r)
{
    r->gref = 0x9E3779B9u * (i + 1);
    r->offset = (uint16_t)((i * 37) & 0xFFF);
    r->flags = (uint16_t)(i & 0xF);
    r->id = (uint16_t)i;
    r->size = (uint16_t)(60 + i % 1455);
}

static const int16_t tx_status[4] = { NETIF_RSP_OKAY, NETIF_RSP_ERROR, NETIF_RSP_DROPPED,
                                      NETIF_RSP_NULL };

static void tx_response(unsigned i, netif_tx_response_t *r)
{
    r->id = (uint16_t)i;
    r->status = tx_status[i % 4];
}

static void rx_request(unsigned i, netif_rx_request_t *r)
{
    r->id = (uint16_t)i;
    r->pad = 0;
    r->gref = 0x80000000u | i;
}

static void rx_response(unsigned i, netif_rx_response_t *r)
{
    r->id = (uint16_t)i;
    r->offset = (uint16_t)((i * 13) & 0xFFF);
    r->flags = (uint16_t)(i & 0x1F);
    r->status = (int16_t)(i % 9 == 8 ? NETIF_RSP_ERROR : 1 + (int)(i % 1514));
}

#define BLK_HANDLE 0x51
#define BLK_ID(i) (0xB10C000000000000ull | (i))
#define BLK_SECTOR(i) (((uint64_t)(i) << 33) | ((i) & 0xFFF))

static int blk_is_discard(unsigned i) { return i % 10 == 9; }

static uint8_t blk_operation(unsigned i)
{
    if (blk_is_discard(i))
        return BLKIF_OP_DISCARD;
    if (i % 3 == 2)
        return BLKIF_OP_FLUSH_DISKCACHE;
    return (i & 1) ? BLKIF_OP_WRITE : BLKIF_OP_READ;
}

static void blk_request(unsigned i, blkif_request_t *r)
{
    r->operation = blk_operation(i);
    if (blk_is_discard(i)) {
        blkif_request_discard_t *d = (blkif_request_discard_t *)r;
        d->flag = (uint8_t)(i & 1 ? BLKIF_DISCARD_SECURE : 0);
        d->handle = BLK_HANDLE;
        d->id = BLK_ID(i);
        d->sector_number = BLK_SECTOR(i);
        d->nr_sectors = 1000 + i;
        return;
    }
    r->nr_segments = (uint8_t)(r->operation == BLKIF_OP_FLUSH_DISKCACHE ? 0 : 1 + i % 11);
    r->handle = BLK_HANDLE;
    r->id = BLK_ID(i);
    r->sector_number = BLK_SECTOR(i);
    for (unsigned j = 0; j < r->nr_segments; j++) {
        r->seg[j].gref = i * 16 + j;
        r->seg[j].first_sect = (uint8_t)((i + j) % 8);
        r->seg[j].last_sect = 7;
    }
}

static void blk_response(unsigned i, blkif_response_t *r)
{
    r->id = BLK_ID(i);
    r->operation = blk_operation(i);
    if (i % 13 == 12)
        r->status = BLKIF_RSP_ERROR;
    else if (blk_is_discard(i) && (i & 1))
        r->status = BLKIF_RSP_EOPNOTSUPP;
    else
        r->status = BLKIF_RSP_OKAY;
}

/* ---- checks: what arrived against the formula ---------------------------------------- */

static void tx_check_request(unsigned i, const netif_tx_request_t *got)
{
    netif_tx_request_t want;
    tx_request(i, &want);
    EXPECT("gref", got->gref, want.gref);
    EXPECT("offset", got->offset, want.offset);
    EXPECT("flags", got->flags, want.flags);
    EXPECT("id", got->id, want.id);
    EXPECT("size", got->size, want.size);
}

static void tx_check_response(unsigned i, const netif_tx_response_t *got)
{
    netif_tx_response_t want;
    tx_response(i, &want);
    EXPECT("response id", got->id, want.id);
    EXPECT("response status", (uint16_t)got->status, (uint16_t)want.status);
}

static void rx_check_request(unsigned i, const netif_rx_request_t *got)
{
    netif_rx_request_t want;
    rx_request(i, &want);
    EXPECT("id", got->id, want.id);
    EXPECT("pad", got->pad, 0);
    EXPECT("gref", got->gref, want.gref);
}

static void rx_check_response(unsigned i, const netif_rx_response_t *got)
{
    netif_rx_response_t want;
    rx_response(i, &want);
    EXPECT("response id", got->id, want.id);
    EXPECT("response offset", got->offset, want.offset);
    EXPECT("response flags", got->flags, want.flags);
    EXPECT("response status", (uint16_t)got->status, (uint16_t)want.status);
}

static void blk_check_request(unsigned i, const blkif_request_t *got)
{
    blkif_request_t want;
    memset(&want, 0, sizeof(want));
    blk_request(i, &want);
    EXPECT("operation", got->operation, want.operation);
    if (blk_is_discard(i)) {
        const blkif_request_discard_t *g = (const blkif_request_discard_t *)got;
        const blkif_request_discard_t *w = (const blkif_request_discard_t *)&want;
        EXPECT("discard flag", g->flag, w->flag);
        EXPECT("discard handle", g->handle, w->handle);
        EXPECT("discard id", g->id, w->id);
        EXPECT("discard sector_number", g->sector_number, w->sector_number);
        EXPECT("discard nr_sectors", g->nr_sectors, w->nr_sectors);
        return;
    }
    EXPECT("nr_segments", got->nr_segments, want.nr_segments);
    EXPECT("handle", got->handle, want.handle);
    EXPECT("id", got->id, want.id);
    EXPECT("sector_number", got->sector_number, want.sector_number);
    for (unsigned j = 0; j < want.nr_segments; j++) {
        EXPECT("segment gref", got->seg[j].gref, want.seg[j].gref);
        EXPECT("segment first_sect", got->seg[j].first_sect, want.seg[j].first_sect);
        EXPECT("segment last_sect", got->seg[j].last_sect, want.seg[j].last_sect);
    }
}

static void blk_check_response(unsigned i, const blkif_response_t *got)
{
    blkif_response_t want;
    blk_response(i, &want);
    EXPECT("response id", got->id, want.id);
    EXPECT("response operation", got->operation, want.operation);
    EXPECT("response status", (uint16_t)got->status, (uint16_t)want.status);
}

/* ---- the two ends, once per ring type ------------------------------------------------ */

/* A front: initialise the shared ring at START, then send COUNT requests in batches of
 * 1..37 (so pushes land at every phase of the ring), check every response, and sleep
 * (RING_FINAL_CHECK_FOR_RESPONSES first) only when it cannot send. */
#define DEFINE_FRONT(tag, req_t, rsp_t, make, check)                                  \
static void tag##_front(void *page, size_t bytes, RING_IDX start, unsigned count)     \
{                                                                                     \
    struct tag##_sring *s = page;                                                     \
    struct tag##_front_ring front;                                                    \
    unsigned sent = 0, got = 0, round = 0;                                            \
    SHARED_RING_INIT(s);                                                              \
    s->req_prod = s->rsp_prod = start;                                                \
    s->req_event = s->rsp_event = start + 1;                                          \
    FRONT_RING_ATTACH(&front, s, start, bytes);                                       \
    kick(); /* the ring is initialised: xenbus's "Initialised" */                      \
    while (got < count) {                                                             \
        unsigned batch = 1 + (round++ * 7) % 37;                                      \
        int notify, more;                                                             \
        while (batch-- && sent < count && !RING_FULL(&front)) {                       \
            req_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt);                \
            memset(req, 0, sizeof(*req));                                             \
            make(sent, req);                                                          \
            front.req_prod_pvt++;                                                     \
            sent++;                                                                   \
        }                                                                             \
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);                          \
        if (notify)                                                                   \
            kick();                                                                   \
        RING_IDX rp = front.sring->rsp_prod;                                          \
        xen_rmb();                                                                    \
        if (RING_RESPONSE_PROD_OVERFLOW(&front, rp))                                  \
            FAIL("rsp_prod %u overflows rsp_cons %u", rp, front.rsp_cons);             \
        while (front.rsp_cons != rp) {                                                \
            rsp_t rsp;                                                                \
            RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);                         \
            check(got, &rsp);                                                         \
            front.rsp_cons++;                                                         \
            got++;                                                                    \
        }                                                                             \
        if (got == count)                                                             \
            break;                                                                    \
        if (sent < count && !RING_FULL(&front))                                       \
            continue;                                                                 \
        RING_FINAL_CHECK_FOR_RESPONSES(&front, more);                                 \
        if (!more)                                                                    \
            wait_for_kick();                                                          \
    }                                                                                 \
    printf("requests %u responses %u kicks %lu waits %lu\n", sent, got, kicks, waits); \
}

/* A back: attach at START, answer each request at once, push the batch, and sleep
 * (RING_FINAL_CHECK_FOR_REQUESTS first) when nothing is left. */
#define DEFINE_BACK(tag, req_t, rsp_t, check, make)                                   \
static void tag##_back(void *page, size_t bytes, RING_IDX start, unsigned count)      \
{                                                                                     \
    struct tag##_sring *s = page;                                                     \
    struct tag##_back_ring back;                                                      \
    unsigned done = 0, taken = 0;                                                     \
    BACK_RING_ATTACH(&back, s, start, bytes);                                         \
    while (done < count) {                                                            \
        int notify, more;                                                             \
        RING_IDX rc = back.req_cons, rp = back.sring->req_prod;                       \
        xen_rmb();                                                                    \
        if (RING_REQUEST_PROD_OVERFLOW(&back, rp))                                    \
            FAIL("req_prod %u overflows rsp_prod_pvt %u", rp, back.rsp_prod_pvt);      \
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&back, rc)) {                  \
            req_t req;                                                                \
            RING_COPY_REQUEST(&back, rc, &req);                                       \
            back.req_cons = ++rc;                                                     \
            check(taken, &req);                                                       \
            make(taken, RING_GET_RESPONSE(&back, back.rsp_prod_pvt));                 \
            back.rsp_prod_pvt++;                                                      \
            taken++;                                                                  \
            done++;                                                                   \
        }                                                                             \
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);                          \
        if (notify)                                                                   \
            kick();                                                                   \
        if (done >= count)                                                            \
            break;                                                                    \
        RING_FINAL_CHECK_FOR_REQUESTS(&back, more);                                   \
        if (!more)                                                                    \
            wait_for_kick();                                                          \
    }                                                                                 \
    printf("requests %u responses %u kicks %lu waits %lu\n", taken, done, kicks, waits); \
}

DEFINE_FRONT(netif_tx, netif_tx_request_t, netif_tx_response_t, tx_request, tx_check_response)
DEFINE_FRONT(netif_rx, netif_rx_request_t, netif_rx_response_t, rx_request, rx_check_response)
DEFINE_FRONT(blkif, blkif_request_t, blkif_response_t, blk_request, blk_check_response)
DEFINE_BACK(netif_tx, netif_tx_request_t, netif_tx_response_t, tx_check_request, tx_response)
DEFINE_BACK(netif_rx, netif_rx_request_t, netif_rx_response_t, rx_check_request, rx_response)
DEFINE_BACK(blkif, blkif_request_t, blkif_response_t, blk_check_request, blk_response)

/* ---- blkdisk-front: real block I/O against a backend ------------------------------- */

#define DISK_SECTORS 2048u
#define DISK_DATA_PAGES 64u
#define DISK_GREF 1000u
#define DISK_INDIRECT_GREF 2000u
#define DISK_BAD_GREF 7777u

static uint8_t disk_model[DISK_SECTORS * 512];

struct blkdisk {
    blkif_front_ring_t front;
    uint8_t *data;      /* DISK_DATA_PAGES pages: 0..31 written from, 32..63 read into */
    uint8_t *indirect;  /* one page of blkif_request_segment */
    uint64_t next_id;
    unsigned requests, refused;
};

/* One request (any layout, in a zeroed slot), pushed, and its response awaited: the id
 * must be the request's and the operation the expected one; the status is returned. */
static int16_t blkdisk_call(struct blkdisk *d, const void *req, size_t size, uint64_t id,
                            uint8_t expect_op)
{
    unsigned i = d->requests;
    void *slot = RING_GET_REQUEST(&d->front, d->front.req_prod_pvt);
    int notify;
    memset(slot, 0, sizeof(blkif_request_t));
    memcpy(slot, req, size);
    d->front.req_prod_pvt++;
    d->requests++;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&d->front, notify);
    if (notify)
        kick();
    for (;;) {
        RING_IDX rp = d->front.sring->rsp_prod;
        int more;
        xen_rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&d->front, rp))
            FAIL("rsp_prod %u overflows rsp_cons %u", rp, d->front.rsp_cons);
        if (d->front.rsp_cons != rp) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&d->front, d->front.rsp_cons, &rsp);
            d->front.rsp_cons++;
            EXPECT("response id", rsp.id, id);
            EXPECT("response operation", rsp.operation, expect_op);
            return rsp.status;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&d->front, more);
        if (!more)
            wait_for_kick();
    }
}

static uint8_t disk_byte(unsigned i, unsigned s, unsigned b)
{
    return (uint8_t)(i * 131u + s * 29u + b * 7u + (b >> 9));
}

/* Segment s of an nseg-segment transfer in round i: which sectors of its page. */
static void disk_segment(unsigned i, unsigned s, unsigned nseg, uint8_t *first, uint8_t *last)
{
    *first = (uint8_t)(s == 0 ? i % 4 : 0);
    *last = (uint8_t)(s == nseg - 1 ? 7 - i % 3 : 7);
}

/* Write nseg segments from sector (their data from round i) and read them back into the
 * other half of the pages, plainly (nseg <= 11) or through the indirect page. */
static void disk_transfer(struct blkdisk *d, unsigned i, unsigned nseg, uint64_t sector)
{
    unsigned i_ = i;
    for (int pass = 0; pass < 2; pass++) {
        uint8_t op = pass == 0 ? BLKIF_OP_WRITE : BLKIF_OP_READ;
        unsigned base = pass == 0 ? 0 : 32;
        uint64_t at = sector, id = d->next_id++;
        blkif_request_t plain;
        blkif_request_indirect_t ind;
        struct blkif_request_segment *segs = nseg <= BLKIF_MAX_SEGMENTS_PER_REQUEST ? plain.seg
                                      : (struct blkif_request_segment *)d->indirect;
        memset(&plain, 0, sizeof(plain));
        memset(&ind, 0, sizeof(ind));
        for (unsigned s = 0; s < nseg; s++) {
            uint8_t first, last;
            uint8_t *page = d->data + (size_t)(base + s) * 4096;
            disk_segment(i, s, nseg, &first, &last);
            segs[s].gref = DISK_GREF + base + s;
            segs[s].first_sect = first;
            segs[s].last_sect = last;
            size_t from = first * 512u, len = (last - first + 1u) * 512u;
            if (op == BLKIF_OP_WRITE) {
                for (size_t b = 0; b < len; b++) {
                    page[from + b] = disk_byte(i, s, (unsigned)b);
                    disk_model[at * 512 + b] = page[from + b];
                }
            } else {
                memset(page, 0xEE, 4096);
            }
            at += last - first + 1u;
        }
        int16_t status;
        if (nseg <= BLKIF_MAX_SEGMENTS_PER_REQUEST) {
            plain.operation = op;
            plain.nr_segments = (uint8_t)nseg;
            plain.handle = 0;
            plain.id = id;
            plain.sector_number = sector;
            status = blkdisk_call(d, &plain, sizeof(plain), id, op);
        } else {
            ind.operation = BLKIF_OP_INDIRECT;
            ind.indirect_op = op;
            ind.nr_segments = (uint16_t)nseg;
            ind.id = id;
            ind.sector_number = sector;
            ind.handle = 0;
            ind.indirect_grefs[0] = DISK_INDIRECT_GREF;
            status = blkdisk_call(d, &ind, sizeof(ind), id, op);  /* answered as its op */
        }
        EXPECT("transfer status", (uint16_t)status, BLKIF_RSP_OKAY);
        if (op == BLKIF_OP_READ) {
            at = sector;
            for (unsigned s = 0; s < nseg; s++) {
                uint8_t first, last;
                const uint8_t *page = d->data + (size_t)(base + s) * 4096;
                disk_segment(i, s, nseg, &first, &last);
                size_t from = first * 512u, len = (last - first + 1u) * 512u;
                if (memcmp(page + from, disk_model + at * 512, len) != 0)
                    FAIL("round %u: segment %u read back differs from what was written", i_, s);
                if ((first && page[0] != 0xEE) || (last < 7 && page[4095] != 0xEE))
                    FAIL("round %u: segment %u: the backend wrote outside its sectors", i_, s);
                at += last - first + 1u;
            }
        }
    }
}

static void disk_refused(struct blkdisk *d, uint8_t operation, uint8_t nseg, uint32_t gref,
                         uint8_t first, uint8_t last, int16_t want)
{
    blkif_request_t r;
    unsigned i = d->requests;
    memset(&r, 0, sizeof(r));
    r.operation = operation;
    r.nr_segments = nseg;
    r.id = d->next_id++;
    r.sector_number = 8;
    for (unsigned s = 0; s < nseg && s < BLKIF_MAX_SEGMENTS_PER_REQUEST; s++) {
        r.seg[s].gref = s == 0 ? gref : DISK_GREF + s;
        r.seg[s].first_sect = s == 0 ? first : 0;
        r.seg[s].last_sect = s == 0 ? last : 7;
    }
    EXPECT("refusal", (uint16_t)blkdisk_call(d, &r, sizeof(r), r.id, operation), (uint16_t)want);
    d->refused++;
}

static void blkdisk_front(int fd, void *page, size_t bytes, RING_IDX start, unsigned count)
{
    struct blkdisk d;
    blkif_sring_t *s = page;
    size_t data_bytes = (DISK_DATA_PAGES + 1) * 4096u;
    uint8_t *data = mmap(NULL, data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         (off_t)bytes);
    if (data == MAP_FAILED)
        FAIL("mmap of the data pages: %s", strerror(errno));
    memset(&d, 0, sizeof(d));
    d.data = data;
    d.indirect = data + DISK_DATA_PAGES * 4096u;
    d.next_id = 0xD15C000000000000ull;
    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
    FRONT_RING_ATTACH(&d.front, s, start, bytes);
    kick();
    for (unsigned i = 0; i < count; i++) {
        unsigned nseg = i % 4 == 3 ? 12 + i % 20 : 1 + i % 11;
        uint64_t sector = (i * 97u) % (DISK_SECTORS - 32 * 8);
        disk_transfer(&d, i, nseg, sector);
        if (i % 7 == 6) {
            blkif_request_discard_t r;
            memset(&r, 0, sizeof(r));
            r.operation = BLKIF_OP_DISCARD;
            r.id = d.next_id++;
            r.sector_number = (i * 53u) % (DISK_SECTORS - 64);
            r.nr_sectors = 1 + i % 50;
            EXPECT("discard", (uint16_t)blkdisk_call(&d, &r, sizeof(r), r.id,
                                                     BLKIF_OP_DISCARD), BLKIF_RSP_OKAY);
            memset(disk_model + r.sector_number * 512, 0, r.nr_sectors * 512);
        }
        if (i % 9 == 8) {
            blkif_request_t r;
            memset(&r, 0, sizeof(r));
            r.operation = BLKIF_OP_FLUSH_DISKCACHE;
            r.id = d.next_id++;
            EXPECT("flush", (uint16_t)blkdisk_call(&d, &r, sizeof(r), r.id,
                                                   BLKIF_OP_FLUSH_DISKCACHE), BLKIF_RSP_OKAY);
        }
        if (i % 13 == 12) {
            disk_refused(&d, BLKIF_OP_WRITE, 3, DISK_BAD_GREF, 0, 7, BLKIF_RSP_ERROR);
            disk_refused(&d, BLKIF_OP_READ, 2, DISK_GREF + 40, 6, 2, BLKIF_RSP_ERROR);
            disk_refused(&d, BLKIF_OP_READ, 1, DISK_GREF + 40, 0, 8, BLKIF_RSP_ERROR);
            disk_refused(&d, BLKIF_OP_WRITE, 0, 0, 0, 0, BLKIF_RSP_ERROR);
            disk_refused(&d, BLKIF_OP_WRITE_BARRIER, 1, DISK_GREF, 0, 7, BLKIF_RSP_EOPNOTSUPP);
        }
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t b = 0; b < sizeof(disk_model); b++)
        h = (h ^ disk_model[b]) * 0x100000001b3ull;
    printf("requests %u refused %u fnv %016" PRIx64 "\n", d.requests, d.refused, h);
}

/* ---- layout: what the Python modules must agree with --------------------------------- */

#define OFF(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), \
                             sizeof(((struct s *)0)->f))
#define CONST(name) printf("const.%s %d\n", #name, (int)(name))
#define SIZE(s) printf("sizeof.%s %zu\n", #s, sizeof(struct s))

static void layout(void)
{
    OFF(netif_tx_sring, req_prod);
    OFF(netif_tx_sring, req_event);
    OFF(netif_tx_sring, rsp_prod);
    OFF(netif_tx_sring, rsp_event);
    OFF(netif_tx_sring, pvt);
    OFF(netif_tx_sring, __pad);
    OFF(netif_tx_sring, ring);
    OFF(netif_rx_sring, ring);
    OFF(blkif_sring, ring);
    printf("entry.netif_tx %zu\n", sizeof(union netif_tx_sring_entry));
    printf("entry.netif_rx %zu\n", sizeof(union netif_rx_sring_entry));
    printf("entry.blkif %zu\n", sizeof(union blkif_sring_entry));
    for (unsigned pages = 1; pages <= 4; pages *= 2) {
        printf("ring_size.netif_tx.%u %lu\n", pages,
               (unsigned long)__CONST_RING_SIZE(netif_tx, 4096 * pages));
        printf("ring_size.netif_rx.%u %lu\n", pages,
               (unsigned long)__CONST_RING_SIZE(netif_rx, 4096 * pages));
        printf("ring_size.blkif.%u %lu\n", pages,
               (unsigned long)__CONST_RING_SIZE(blkif, 4096 * pages));
    }
    SIZE(netif_tx_request);
    OFF(netif_tx_request, gref);
    OFF(netif_tx_request, offset);
    OFF(netif_tx_request, flags);
    OFF(netif_tx_request, id);
    OFF(netif_tx_request, size);
    SIZE(netif_tx_response);
    OFF(netif_tx_response, id);
    OFF(netif_tx_response, status);
    SIZE(netif_rx_request);
    OFF(netif_rx_request, id);
    OFF(netif_rx_request, pad);
    OFF(netif_rx_request, gref);
    SIZE(netif_rx_response);
    OFF(netif_rx_response, id);
    OFF(netif_rx_response, offset);
    OFF(netif_rx_response, flags);
    OFF(netif_rx_response, status);
    SIZE(netif_extra_info);
    OFF(netif_extra_info, type);
    OFF(netif_extra_info, flags);
    OFF(netif_extra_info, u.gso.size);
    OFF(netif_extra_info, u.gso.type);
    OFF(netif_extra_info, u.gso.features);
    OFF(netif_extra_info, u.mcast.addr);
    OFF(netif_extra_info, u.hash.type);
    OFF(netif_extra_info, u.hash.algorithm);
    OFF(netif_extra_info, u.hash.value);
    SIZE(blkif_request_segment);
    OFF(blkif_request_segment, gref);
    OFF(blkif_request_segment, first_sect);
    OFF(blkif_request_segment, last_sect);
    SIZE(blkif_request);
    OFF(blkif_request, operation);
    OFF(blkif_request, nr_segments);
    OFF(blkif_request, handle);
    OFF(blkif_request, id);
    OFF(blkif_request, sector_number);
    OFF(blkif_request, seg);
    SIZE(blkif_request_discard);
    OFF(blkif_request_discard, operation);
    OFF(blkif_request_discard, flag);
    OFF(blkif_request_discard, handle);
    OFF(blkif_request_discard, id);
    OFF(blkif_request_discard, sector_number);
    OFF(blkif_request_discard, nr_sectors);
    SIZE(blkif_request_indirect);
    OFF(blkif_request_indirect, operation);
    OFF(blkif_request_indirect, indirect_op);
    OFF(blkif_request_indirect, nr_segments);
    OFF(blkif_request_indirect, id);
    OFF(blkif_request_indirect, sector_number);
    OFF(blkif_request_indirect, handle);
    OFF(blkif_request_indirect, indirect_grefs);
    SIZE(blkif_response);
    OFF(blkif_response, id);
    OFF(blkif_response, operation);
    OFF(blkif_response, status);
    SIZE(xencons_interface);
    OFF(xencons_interface, in);
    OFF(xencons_interface, out);
    OFF(xencons_interface, in_cons);
    OFF(xencons_interface, in_prod);
    OFF(xencons_interface, out_cons);
    OFF(xencons_interface, out_prod);
    CONST(BLKIF_MAX_SEGMENTS_PER_REQUEST);
    CONST(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    CONST(BLKIF_DISCARD_SECURE);
    CONST(BLKIF_OP_READ);
    CONST(BLKIF_OP_WRITE);
    CONST(BLKIF_OP_WRITE_BARRIER);
    CONST(BLKIF_OP_FLUSH_DISKCACHE);
    CONST(BLKIF_OP_RESERVED_1);
    CONST(BLKIF_OP_DISCARD);
    CONST(BLKIF_OP_INDIRECT);
    CONST(BLKIF_RSP_EOPNOTSUPP);
    CONST(BLKIF_RSP_ERROR);
    CONST(BLKIF_RSP_OKAY);
    CONST(VDISK_CDROM);
    CONST(VDISK_REMOVABLE);
    CONST(VDISK_READONLY);
    CONST(XEN_NETIF_NR_SLOTS_MIN);
    CONST(XEN_NETIF_MAX_TX_SIZE);
    CONST(NETTXF_csum_blank);
    CONST(NETTXF_data_validated);
    CONST(NETTXF_more_data);
    CONST(NETTXF_extra_info);
    CONST(NETRXF_data_validated);
    CONST(NETRXF_csum_blank);
    CONST(NETRXF_more_data);
    CONST(NETRXF_extra_info);
    CONST(NETRXF_gso_prefix);
    CONST(XEN_NETIF_EXTRA_TYPE_NONE);
    CONST(XEN_NETIF_EXTRA_TYPE_GSO);
    CONST(XEN_NETIF_EXTRA_TYPE_MCAST_ADD);
    CONST(XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
    CONST(XEN_NETIF_EXTRA_TYPE_HASH);
    CONST(XEN_NETIF_EXTRA_TYPE_MAX);
    CONST(XEN_NETIF_EXTRA_FLAG_MORE);
    CONST(XEN_NETIF_GSO_TYPE_NONE);
    CONST(XEN_NETIF_GSO_TYPE_TCPV4);
    CONST(XEN_NETIF_GSO_TYPE_TCPV6);
    CONST(NETIF_RSP_DROPPED);
    CONST(NETIF_RSP_ERROR);
    CONST(NETIF_RSP_OKAY);
    CONST(NETIF_RSP_NULL);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0) {
        layout();
        return 0;
    }
    if (argc != 8)
        FAIL("usage: %s layout | MODE PATH RING_BYTES START COUNT WAIT_FD KICK_FD", argv[0]);
    const char *mode = argv[1];
    size_t bytes = strtoul(argv[3], NULL, 0);
    RING_IDX start = (RING_IDX)strtoul(argv[4], NULL, 0);
    unsigned count = (unsigned)strtoul(argv[5], NULL, 0);
    wait_fd = atoi(argv[6]);
    kick_fd = atoi(argv[7]);
    int fd = open(argv[2], O_RDWR);
    if (fd < 0)
        FAIL("open %s: %s", argv[2], strerror(errno));
    void *page = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED)
        FAIL("mmap: %s", strerror(errno));
    if (strcmp(mode, "tx-front") == 0)
        netif_tx_front(page, bytes, start, count);
    else if (strcmp(mode, "tx-back") == 0)
        netif_tx_back(page, bytes, start, count);
    else if (strcmp(mode, "rx-front") == 0)
        netif_rx_front(page, bytes, start, count);
    else if (strcmp(mode, "rx-back") == 0)
        netif_rx_back(page, bytes, start, count);
    else if (strcmp(mode, "blk-front") == 0)
        blkif_front(page, bytes, start, count);
    else if (strcmp(mode, "blk-back") == 0)
        blkif_back(page, bytes, start, count);
    else if (strcmp(mode, "blkdisk-front") == 0)
        blkdisk_front(fd, page, bytes, start, count);
    else
        FAIL("unknown mode %s", mode);
    return 0;
}
