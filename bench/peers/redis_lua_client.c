/* Peer 2 driver: sends NDJSON events to redis-server as EVALSHA calls of
 * profile_rules.lua (the profile update + three rules' conditions) and reports
 * events/s, latency and the server's CPU time over the run.
 *
 *   redis_lua_client --port P --events FILE [--duration S] [--pipeline D]
 *                    [--connections C] [--server-pid PID] [--script FILE]
 *
 * --pipeline 1 is the request/response pattern a POS reply needs (closed loop,
 * one in flight); D > 1 sends D commands per round trip, which is how Redis is
 * at its best. With C > 1 each connection runs in its own thread.
 * Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef PEER_LUA_SCRIPT
#define PEER_LUA_SCRIPT "bench/peers/profile_rules.lua"
#endif

typedef struct {
  char* json;
  size_t json_len;
  char key[160];
} Event;

static Event* g_events;
static size_t g_event_count;
static char g_sha[64];
static int g_port = 6379, g_pipeline = 1;
static double g_duration = 5;

typedef struct {
  size_t first;
  uint64_t done, errors, actions;
  double* lat_us; /* one sample per round trip */
  size_t lat_n, lat_cap;
} Worker;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  /* fields after ')': 3 state ... 14 utime 15 stime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* userId if present, else anonymousId: the same key storepulse routes by. */
static void customer_key(const char* json, char* out, size_t cap) {
  const char* names[] = {"\"userId\":\"", "\"anonymousId\":\""};
  out[0] = 0;
  for (int i = 0; i < 2; ++i) {
    const char* p = strstr(json, names[i]);
    if (!p) continue;
    p += strlen(names[i]);
    const char* e = strchr(p, '"');
    if (!e) continue;
    size_t n = (size_t)(e - p);
    if (n >= cap - 2) n = cap - 3;
    out[0] = 'p';
    out[1] = ':';
    memcpy(out + 2, p, n);
    out[n + 2] = 0;
    return;
  }
  snprintf(out, cap, "p:unknown");
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void* run_worker(void* arg) {
  Worker* w = arg;
  redisContext* c = redisConnect("127.0.0.1", g_port);
  if (!c || c->err) {
    fprintf(stderr, "redis_lua_client: connect: %s\n", c ? c->errstr : "out of memory");
    exit(2);
  }
  size_t next = w->first;
  const double end = now_s() + g_duration;
  while (now_s() < end) {
    const double t0 = now_s();
    for (int i = 0; i < g_pipeline; ++i) {
      Event* e = &g_events[next];
      next = next + 1 == g_event_count ? 0 : next + 1;
      redisAppendCommand(c, "EVALSHA %s 1 %s %b", g_sha, e->key, e->json, e->json_len);
    }
    for (int i = 0; i < g_pipeline; ++i) {
      redisReply* r = NULL;
      if (redisGetReply(c, (void**)&r) != REDIS_OK || !r) {
        fprintf(stderr, "redis_lua_client: %s\n", c->errstr);
        exit(2);
      }
      if (r->type == REDIS_REPLY_ERROR) {
        if (w->errors++ == 0) fprintf(stderr, "redis_lua_client: first error: %s\n", r->str);
      } else if (r->type == REDIS_REPLY_STRING && strstr(r->str, "\"actions\"")) {
        ++w->actions;
      }
      freeReplyObject(r);
    }
    w->done += (uint64_t)g_pipeline;
    if (w->lat_n == w->lat_cap) {
      w->lat_cap = w->lat_cap ? w->lat_cap * 2 : 65536;
      w->lat_us = realloc(w->lat_us, w->lat_cap * sizeof *w->lat_us);
    }
    w->lat_us[w->lat_n++] = (now_s() - t0) * 1e6;
  }
  redisFree(c);
  return NULL;
}

static char* slurp(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* s = malloc((size_t)n + 1);
  *len = fread(s, 1, (size_t)n, f);
  s[*len] = 0;
  fclose(f);
  return s;
}

int main(int argc, char** argv) {
  const char* events_path = NULL;
  const char* script_path = PEER_LUA_SCRIPT;
  int server_pid = 0, connections = 1;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) goto usage;
    if (!strcmp(argv[i], "--port")) g_port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--events")) events_path = argv[++i];
    else if (!strcmp(argv[i], "--duration")) g_duration = atof(argv[++i]);
    else if (!strcmp(argv[i], "--pipeline")) g_pipeline = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--connections")) connections = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--server-pid")) server_pid = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--script")) script_path = argv[++i];
    else goto usage;
  }
  if (!events_path || g_pipeline < 1 || connections < 1) goto usage;

  size_t len = 0;
  char* text = slurp(events_path, &len);
  if (!text) {
    fprintf(stderr, "redis_lua_client: cannot read %s\n", events_path);
    return 2;
  }
  size_t cap = 1024;
  g_events = malloc(cap * sizeof *g_events);
  for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (g_event_count == cap) g_events = realloc(g_events, (cap *= 2) * sizeof *g_events);
    Event* e = &g_events[g_event_count++];
    e->json = line;
    e->json_len = strlen(line);
    customer_key(line, e->key, sizeof e->key);
  }
  if (g_event_count == 0) {
    fprintf(stderr, "redis_lua_client: no events in %s\n", events_path);
    return 2;
  }

  size_t script_len = 0;
  char* script = slurp(script_path, &script_len);
  if (!script) {
    fprintf(stderr, "redis_lua_client: cannot read %s\n", script_path);
    return 2;
  }
  redisContext* c = redisConnect("127.0.0.1", g_port);
  if (!c || c->err) {
    fprintf(stderr, "redis_lua_client: connect to port %d failed\n", g_port);
    return 2;
  }
  redisReply* r = redisCommand(c, "SCRIPT LOAD %b", script, script_len);
  if (!r || r->type != REDIS_REPLY_STRING) {
    fprintf(stderr, "redis_lua_client: SCRIPT LOAD: %s\n", r && r->str ? r->str : c->errstr);
    return 2;
  }
  snprintf(g_sha, sizeof g_sha, "%s", r->str);
  freeReplyObject(r);
  redisFree(c);

  Worker* workers = calloc((size_t)connections, sizeof *workers);
  pthread_t* threads = calloc((size_t)connections, sizeof *threads);
  const double cpu0 = server_pid > 0 ? cpu_seconds(server_pid) : -1;
  const double t0 = now_s();
  for (int i = 0; i < connections; ++i) {
    workers[i].first = g_event_count * (size_t)i / (size_t)connections;
    pthread_create(&threads[i], NULL, run_worker, &workers[i]);
  }
  uint64_t done = 0, errors = 0, actions = 0;
  size_t lat_n = 0;
  for (int i = 0; i < connections; ++i) {
    pthread_join(threads[i], NULL);
    done += workers[i].done;
    errors += workers[i].errors;
    actions += workers[i].actions;
    lat_n += workers[i].lat_n;
  }
  const double elapsed = now_s() - t0;
  const double cpu1 = server_pid > 0 ? cpu_seconds(server_pid) : -1;
  double* lat = malloc((lat_n ? lat_n : 1) * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < connections; ++i) {
    memcpy(lat + k, workers[i].lat_us, workers[i].lat_n * sizeof *lat);
    k += workers[i].lat_n;
  }
  qsort(lat, lat_n, sizeof *lat, cmp_double);
#define Q(p) (lat_n ? lat[(size_t)((p) * (double)(lat_n - 1))] : 0.0)
  const double cpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
  printf("{\"peer\":\"redis-lua\",\"pipeline\":%d,\"connections\":%d,\"elapsedS\":%.3f,\"events\":%llu,"
         "\"errors\":%llu,\"actions\":%llu,\"throughput\":%.1f,"
         "\"roundTripUs\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f},\"serverCpuS\":%.3f,"
         "\"eventsPerServerCpuS\":%.0f}\n",
         g_pipeline, connections, elapsed, (unsigned long long)done, (unsigned long long)errors,
         (unsigned long long)actions, (double)done / elapsed, Q(0.5), Q(0.99), Q(0.999), cpu,
         cpu > 0 ? (double)done / cpu : 0.0);
  return errors == 0 ? 0 : 1;
usage:
  fprintf(stderr,
          "usage: redis_lua_client --port P --events FILE [--duration S] [--pipeline D] [--connections C]"
          " [--server-pid PID] [--script FILE]\n");
  return 2;
}
