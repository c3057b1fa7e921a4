/* Peer 1, the transport ceiling: a minimal epoll WebSocket echo server.
 *
 * It does what any WebSocket server must do and nothing more: the RFC 6455
 * handshake (SHA-1 + base64 of the key), unmasking, and one frame back per
 * frame received. No JSON parsing, no state, no allocation per message once a
 * connection's buffers have grown. Whatever storepulse spends beyond this is
 * the price of the engine, which is what the benchmark ratio is meant to show.
 *
 *   ws_echo [--port N] [--threads T]
 *
 * Prints "listening on http://127.0.0.1:PORT" (port 0 = any free port). With
 * T > 1 each thread has its own epoll and its own SO_REUSEPORT listener, so the
 * kernel spreads connections and threads share nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kMaxEvents = 256, kReadChunk = 65536, kMaxHandshake = 8192 };

typedef struct {
  char* data;
  size_t len, cap;
} Buffer;

typedef struct {
  int fd;
  int upgraded;
  int want_out; /* EPOLLOUT armed because the kernel buffer was full */
  Buffer in, out;
} Conn;

static void buf_reserve(Buffer* b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  b->data = realloc(b->data, cap);
  if (!b->data) abort();
  b->cap = cap;
}

static void buf_append(Buffer* b, const void* p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_consume(Buffer* b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static void conn_close(int ep, Conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->in.data);
  free(c->out.data);
  free(c);
}

/* Writes what the kernel takes; arms EPOLLOUT for the rest. -1 on a dead socket. */
static int conn_flush(int ep, Conn* c) {
  size_t off = 0;
  while (off < c->out.len) {
    ssize_t n = write(c->fd, c->out.data + off, c->out.len - off);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  buf_consume(&c->out, off);
  int want = c->out.len > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
  }
  return 0;
}

/* 0: need more bytes, 1: upgraded, -1: not a WebSocket request. */
static int handshake(Conn* c) {
  char* end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
  if (!end) return c->in.len > kMaxHandshake ? -1 : 0;
  size_t req_len = (size_t)(end - c->in.data) + 4;
  const char* key = NULL;
  size_t key_len = 0;
  for (char* line = c->in.data; line < end;) {
    char* eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    if (!eol) break;
    static const char kName[] = "sec-websocket-key:";
    if ((size_t)(eol - line) > sizeof kName - 1 && strncasecmp(line, kName, sizeof kName - 1) == 0) {
      key = line + sizeof kName - 1;
      while (key < eol && (*key == ' ' || *key == '\t')) ++key;
      key_len = (size_t)(eol - key);
      while (key_len > 0 && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t')) --key_len;
    }
    line = eol + 2;
  }
  if (!key || key_len == 0 || key_len > 64) return -1;
  static const char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char material[128], digest[SHA_DIGEST_LENGTH];
  memcpy(material, key, key_len);
  memcpy(material + key_len, kGuid, sizeof kGuid - 1);
  SHA1(material, key_len + sizeof kGuid - 1, digest);
  unsigned char accept[64];
  EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
  char reply[256];
  int n = snprintf(reply, sizeof reply,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   (const char*)accept);
  buf_append(&c->out, reply, (size_t)n);
  buf_consume(&c->in, req_len);
  c->upgraded = 1;
  return 1;
}

/* Echoes every complete frame in the input buffer. -1 to close the connection. */
static int echo_frames(Conn* c) {
  size_t off = 0;
  for (;;) {
    unsigned char* p = (unsigned char*)c->in.data + off;
    size_t avail = c->in.len - off;
    if (avail < 2) break;
    unsigned opcode = p[0] & 0x0f;
    int masked = (p[1] & 0x80) != 0;
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)p[2] << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      hdr = 10;
    }
    if (!masked || len > (64u << 20)) return -1; /* clients must mask (RFC 6455 5.1) */
    if (avail < hdr + 4 + len) break;
    unsigned char* mask = p + hdr;
    unsigned char* payload = p + hdr + 4;
    for (uint64_t i = 0; i < len; ++i) payload[i] ^= mask[i & 3];
    /* Server frames are unmasked; the same FIN bit and opcode go back
     * (a ping becomes a pong, a close is answered with a close). */
    unsigned char out_hdr[10];
    size_t out_hdr_len = 2;
    out_hdr[0] = (unsigned char)((p[0] & 0x80) | (opcode == 0x9 ? 0xA : opcode));
    if (len < 126) {
      out_hdr[1] = (unsigned char)len;
    } else if (len < 65536) {
      out_hdr[1] = 126;
      out_hdr[2] = (unsigned char)(len >> 8);
      out_hdr[3] = (unsigned char)len;
      out_hdr_len = 4;
    } else {
      out_hdr[1] = 127;
      for (int i = 0; i < 8; ++i) out_hdr[2 + i] = (unsigned char)(len >> (56 - 8 * i));
      out_hdr_len = 10;
    }
    if (opcode != 0xA) { /* an unsolicited pong needs no answer */
      buf_append(&c->out, out_hdr, out_hdr_len);
      buf_append(&c->out, payload, (size_t)len);
    }
    off += hdr + 4 + (size_t)len;
    if (opcode == 0x8) {
      buf_consume(&c->in, off);
      return -1;
    }
  }
  buf_consume(&c->in, off);
  return 0;
}

static int open_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
  if (bind(fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
    perror("ws_echo: bind/listen");
    exit(1);
  }
  return fd;
}

static void* serve(void* arg) {
  int lfd = (int)(intptr_t)arg;
  int ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event events[kMaxEvents];
  char chunk[kReadChunk];
  for (;;) {
    int n = epoll_wait(ep, events, kMaxEvents, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      Conn* c = events[i].data.ptr;
      if (!c) { /* the listener */
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          Conn* nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      int dead = (events[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      if (!dead && (events[i].events & EPOLLIN)) {
        ssize_t r = read(c->fd, chunk, sizeof chunk);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) dead = 1;
        else if (r > 0) {
          buf_append(&c->in, chunk, (size_t)r);
          if (!c->upgraded && handshake(c) < 0) dead = 1;
          if (!dead && c->upgraded && echo_frames(c) < 0) {
            conn_flush(ep, c); /* the close frame, best effort */
            dead = 1;
          }
        }
      }
      if (!dead && conn_flush(ep, c) < 0) dead = 1;
      if (dead) conn_close(ep, c);
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  int port = 0, threads = 1;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: ws_echo [--port N] [--threads T]\n");
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  signal(SIGPIPE, SIG_IGN);
  int first = open_listener(port);
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  getsockname(first, (struct sockaddr*)&a, &alen);
  port = ntohs(a.sin_port);
  printf("listening on http://127.0.0.1:%d\n", port);
  fflush(stdout);
  for (int t = 1; t < threads; ++t) {
    pthread_t th;
    pthread_create(&th, NULL, serve, (void*)(intptr_t)open_listener(port));
  }
  serve((void*)(intptr_t)first);
  return 0;
}
