/*
 * fata.platform._frames: a batch of Ethernet frames per call on a TAP file descriptor.
 *
 * Why this exists: a TAP hands over one frame per read(2) and takes one per write(2); a
 * character device has no recvmmsg.  The system calls therefore stay one per frame, but
 * looping over them in Python cost more than the calls themselves: os.readv's argument
 * parsing, an OSError raised to end every drained batch, a memoryview slice per frame, and
 * os.writev taking the buffer of every piece of every frame.  For the direct stack's DNS
 * path that was about a third of the CPU time per query.  Here the loop runs in C and Python
 * sees one call per batch each way.
 *
 * Only I/O lives here: no protocol logic.  The virtio-net header (IFF_VNET_HDR) is
 * stripped on the way in, keeping only whether the kernel vouched for the checksums; on the
 * way out the caller passes the header to put before every frame.  When the module is
 * missing (no compiler at install time) fata.platform.tap loops over os.readv/os.writev.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/if_packet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_SIZE (65536 + 256) /* the largest frame: a 64 KB GSO segment and its headers */
#define COPY_MAX 2048                 /* frames up to this size are copied out of the spare */
#define MAX_PIECES 8                  /* pieces per outgoing frame, besides the header */
#define VNET_CSUM_FLAGS 3             /* VIRTIO_NET_HDR_F_NEEDS_CSUM | _F_DATA_VALID */
#define VNET_NEEDS_CSUM 1             /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
#define TAG_LEN 4                     /* an 802.1Q/802.1ad tag: TPID and TCI */

/* Frames are read (after the virtio-net header, which goes to a buffer of its own) into a
 * spare bytes object of READ_SIZE.  A small frame is copied out of it
 * (cheap, and the spare stays); a large one (TCP segments of up to 64 KB) *becomes* the
 * bytes object handed to Python, shrunk in place, so the bulk data is copied once, by the
 * kernel, and a new spare is allocated for the next read. */
static PyObject *spare;

static PyObject *take_frame(Py_ssize_t start, Py_ssize_t size) {
    if (size <= COPY_MAX)
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(spare) + start, size);
    PyObject *frame = spare;
    spare = NULL;
    if (start)
        memmove(PyBytes_AS_STRING(frame), PyBytes_AS_STRING(frame) + start, (size_t)size);
    if (_PyBytes_Resize(&frame, size) < 0)
        return NULL;
    return frame;
}

PyDoc_STRVAR(read_frames_doc,
"read_frames(fd: int, limit: int, header: int, budget: int = 262144, tag_at: int = 0,\n"
"            keep_offloaded: bool = False)\n"
"    -> tuple[list[bytes], bytes]\n\n"
"Read frames from the non-blocking fd until it has none left, `limit` were read, or they\n"
"add up to `budget` bytes (a batch of 64 KB offloaded segments that outgrows the CPU's\n"
"caches costs more than the wake-ups it saves).\n"
"`header` is the virtio-net header length (0 without IFF_VNET_HDR): it is stripped, and\n"
"the second item holds one byte per frame, 1 when the header says the kernel vouched for\n"
"the checksums.  A read error other than EAGAIN ends the batch like EAGAIN does (the fd\n"
"is going away); frames shorter than the header are skipped.\n"
"`tag_at` (a packet socket with PACKET_AUXDATA on) puts back the VLAN tag the kernel took\n"
"off a received frame, as the auxiliary data gives it, at that offset of the frame (12:\n"
"after the MAC addresses; 22 when the virtio-net header is kept); 0 reads plainly.\n"
"`keep_offloaded` (a forwarder's wire mode): a frame whose header asks for a checksum or\n"
"is a GSO segment keeps its header in front and is marked 2, to be finished by the caller;\n"
"the others are stripped as usual.");

/* The VLAN tag the kernel stripped from a frame a packet socket received, from the
 * PACKET_AUXDATA control message: the tag as wire bytes in tag[], or 0 when there was none. */
static int stripped_tag(struct msghdr *msg, unsigned char tag[TAG_LEN]) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA ||
            c->cmsg_len < CMSG_LEN(sizeof(struct tpacket_auxdata)))
            continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (!(aux.tp_status & TP_STATUS_VLAN_VALID))
            return 0;
        uint16_t tpid = aux.tp_status & TP_STATUS_VLAN_TPID_VALID ? aux.tp_vlan_tpid : 0x8100;
        tag[0] = (unsigned char)(tpid >> 8);
        tag[1] = (unsigned char)tpid;
        tag[2] = (unsigned char)(aux.tp_vlan_tci >> 8);
        tag[3] = (unsigned char)aux.tp_vlan_tci;
        return 1;
    }
    return 0;
}

static PyObject *read_frames(PyObject *Py_UNUSED(module), PyObject *args) {
    int fd;
    int limit;
    int header;
    Py_ssize_t budget = 262144;
    int tag_at = 0;
    int keep_offloaded = 0;
    if (!PyArg_ParseTuple(args, "iii|nip", &fd, &limit, &header, &budget, &tag_at,
                          &keep_offloaded))
        return NULL;
    if (limit < 1 || limit > 4096 || header < 0 || header > 64 || tag_at < 0 ||
        tag_at > 64) {
        PyErr_SetString(PyExc_ValueError,
                        "limit must be 1..4096, header 0..64 and tag_at 0..64");
        return NULL;
    }
    /* With tag_at, a frame is read TAG_LEN bytes into the spare, so that a tag can be put
     * back by moving only the bytes before it. */
    Py_ssize_t room = tag_at ? TAG_LEN : 0;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    } control;
    PyObject *frames = PyList_New(0);
    if (!frames)
        return NULL;
    char flags[4096];
    Py_ssize_t count = 0;
    for (int i = 0; i < limit && budget > 0; i++) {
        if (!spare && !(spare = PyBytes_FromStringAndSize(NULL, READ_SIZE))) {
            Py_DECREF(frames);
            return NULL;
        }
        char vnet[64];
        char *base = PyBytes_AS_STRING(spare);
        struct iovec iov[2] = {{vnet, (size_t)header}, {base + room, READ_SIZE - room}};
        struct msghdr msg = {0};
        ssize_t n;
        if (tag_at) {
            msg.msg_iov = header ? iov : iov + 1;
            msg.msg_iovlen = header ? 2 : 1;
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof control.buf;
            n = recvmsg(fd, &msg, 0);
        } else {
            n = readv(fd, header ? iov : iov + 1, header ? 2 : 1);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (n == 0 || n < header)
            continue;
        budget -= n;
        char vouched_now = header && (vnet[0] & VNET_CSUM_FLAGS) ? 1 : 0;
        Py_ssize_t start = room, size = n - header;
        unsigned char tag[TAG_LEN];
        if (tag_at && size >= tag_at && stripped_tag(&msg, tag)) {
            memmove(base, base + room, (size_t)tag_at);
            memcpy(base + tag_at, tag, TAG_LEN);
            start = 0;
            size += TAG_LEN;
        }
        PyObject *frame;
        if (keep_offloaded && header >= 2 && (vnet[0] & VNET_NEEDS_CSUM || vnet[1])) {
            /* A partial checksum or a GSO segment: handed over with its header, marked 2,
             * for the caller to finish (rare on a forwarder's ports: one copy is fine). */
            frame = PyBytes_FromStringAndSize(NULL, header + size);
            if (frame) {
                memcpy(PyBytes_AS_STRING(frame), vnet, (size_t)header);
                memcpy(PyBytes_AS_STRING(frame) + header, base + start, (size_t)size);
            }
            vouched_now = 2;
        } else {
            frame = take_frame(start, size);
        }
        if (!frame || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(frames);
            return NULL;
        }
        Py_DECREF(frame);
        flags[count++] = vouched_now;
    }
    PyObject *vouched = PyBytes_FromStringAndSize(flags, count);
    if (!vouched) {
        Py_DECREF(frames);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, frames, vouched);
    Py_DECREF(frames);
    Py_DECREF(vouched);
    return result;
}

/* Point iov at the pieces of one frame (a bytes-like, or a tuple of them); returns how
 * many iovecs were filled after the header, or -1 with an exception set.  Buffers taken
 * are recorded in views[] for release_views(). */
static int gather(PyObject *item, struct iovec *iov, Py_buffer *views, int *taken) {
    PyObject *single[1] = {item};
    PyObject **pieces = single;
    Py_ssize_t count = 1;
    if (PyTuple_Check(item)) {
        count = PyTuple_GET_SIZE(item);
        if (count > MAX_PIECES) {
            PyErr_Format(PyExc_ValueError, "a frame has at most %d pieces", MAX_PIECES);
            return -1;
        }
        pieces = &PyTuple_GET_ITEM(item, 0);
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *piece = pieces[k];
        if (PyBytes_Check(piece)) {
            iov[k].iov_base = PyBytes_AS_STRING(piece);
            iov[k].iov_len = (size_t)PyBytes_GET_SIZE(piece);
            continue;
        }
        if (PyObject_GetBuffer(piece, &views[*taken], PyBUF_SIMPLE) < 0)
            return -1;
        iov[k].iov_base = views[*taken].buf;
        iov[k].iov_len = (size_t)views[*taken].len;
        (*taken)++;
    }
    return (int)count;
}

static void release_views(Py_buffer *views, int taken) {
    for (int k = 0; k < taken; k++)
        PyBuffer_Release(&views[k]);
}

PyDoc_STRVAR(write_frames_doc,
"write_frames(fd: int, header: bytes, frames: list[bytes-like | tuple[bytes-like, ...]]) -> int\n\n"
"Write each frame with `header` in front (one writev per frame: a TAP takes one frame per\n"
"call); a frame given as a tuple is written from its pieces without joining them.  Returns\n"
"how many were dropped: a full queue or a closing device drops, as a wire does.");

static PyObject *write_frames(PyObject *Py_UNUSED(module), PyObject *args) {
    int fd;
    Py_buffer head;
    PyObject *frames;
    if (!PyArg_ParseTuple(args, "iy*O!", &fd, &head, &PyList_Type, &frames))
        return NULL;
    struct iovec iov[MAX_PIECES + 1];
    Py_buffer views[MAX_PIECES];
    iov[0].iov_base = head.buf;
    iov[0].iov_len = (size_t)head.len;
    int skip = head.len ? 0 : 1; /* no header: start at iov[1] */
    Py_ssize_t dropped = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(frames); i++) {
        int taken = 0;
        int count = gather(PyList_GET_ITEM(frames, i), iov + 1, views, &taken);
        if (count < 0) {
            release_views(views, taken);
            PyBuffer_Release(&head);
            return NULL;
        }
        if (writev(fd, iov + skip, count + 1 - skip) < 0)
            dropped++;
        release_views(views, taken);
    }
    PyBuffer_Release(&head);
    return PyLong_FromSsize_t(dropped);
}

static PyMethodDef methods[] = {
    {"read_frames", read_frames, METH_VARARGS, read_frames_doc},
    {"write_frames", write_frames, METH_VARARGS, write_frames_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "fata.platform._frames",
    "A batch of Ethernet frames per call on a TAP file descriptor.", -1, methods,
};

PyMODINIT_FUNC PyInit__frames(void) {
    return PyModule_Create(&module);
}
