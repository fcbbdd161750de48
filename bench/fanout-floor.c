/*
 * The kernel's floor for bench/fanout.ts, without Node: a writer process sends one patch-sized buffer
 * to each of N loopback TCP connections (from 1 or more threads) while a reader process, holding the
 * other ends in one epoll set, timestamps each arrival. Whatever this shows, no server written for
 * this machine can beat: it is one write(2) per connection and one read(2) per arrival, nothing else.
 *
 *   cc -O2 -pthread -o fanout-floor fanout-floor.c && ./fanout-floor <N> <bytes> <threads> <rounds>
 *
 * Prints one JSON line per round: {"round":r,"threads":t,"writeMs":…,"latencies":[ms per connection]}
 * where latency = arrival − the moment the writer started the round (CLOCK_MONOTONIC, shared by both
 * processes). fanout.ts compiles and runs it, and prints its figures beside the flag server's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

struct slice {
  int *fds, from, to, bytes;
  const char *data;
};

static void *write_slice(void *arg) {
  struct slice *s = arg;
  for (int i = s->from; i < s->to; i++)
    if (write(s->fds[i], s->data, s->bytes) != s->bytes) die("write");
  return NULL;
}

/* Reader: connects N sockets, then each round reads one buffer from every one and prints latencies. */
static void reader(struct sockaddr_in addr, int n, int bytes, int rounds, int ready_fd, int start_fd,
                   int threads) {
  int ep = epoll_create1(0);
  int *fds = malloc(n * sizeof(int));
  double *lat = malloc(n * sizeof(double));
  char *buf = malloc(bytes);
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&addr, sizeof addr)) die("connect");
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  for (int r = 0; r < rounds; r++) {
    if (write(ready_fd, "r", 1) != 1) die("ready");
    double t0;
    if (read(start_fd, &t0, sizeof t0) != sizeof t0) die("start");
    int *got = calloc(n, sizeof(int)), done = 0;
    struct epoll_event ev[256];
    while (done < n) {
      int k = epoll_wait(ep, ev, 256, -1);
      for (int j = 0; j < k; j++) {
        int i = ev[j].data.u32;
        int m = read(fds[i], buf, bytes - got[i]);
        if (m <= 0) die("read");
        if ((got[i] += m) == bytes) lat[done++] = now_ms() - t0;
      }
    }
    double write_ms;
    if (read(start_fd, &write_ms, sizeof write_ms) != sizeof write_ms) die("written");
    printf("{\"round\":%d,\"threads\":%d,\"writeMs\":%.3f,\"latencies\":[", r, threads, write_ms);
    for (int i = 0; i < n; i++) printf(i ? ",%.3f" : "%.3f", lat[i]);
    printf("]}\n");
    fflush(stdout);
    free(got);
  }
  exit(0);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s <connections> <bytes> <threads> <rounds>\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[1]), bytes = atoi(argv[2]), threads = atoi(argv[3]), rounds = atoi(argv[4]);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 64) {
    fprintf(stderr, "need %d open files, the hard limit is %lu\n", n + 64, (unsigned long)rl.rlim_max);
    return 1;
  }

  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096) ||
      getsockname(listener, (struct sockaddr *)&addr, &len))
    die("listen");
  int ready[2], start[2];
  if (pipe(ready) || pipe(start)) die("pipe");
  if (fork() == 0) reader(addr, n, bytes, rounds, ready[1], start[0], threads);

  int *fds = malloc(n * sizeof(int));
  for (int i = 0; i < n; i++) {
    if ((fds[i] = accept(listener, NULL, NULL)) < 0) die("accept");
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  char *data = malloc(bytes);
  memset(data, ' ', bytes);
  struct slice *slices = calloc(threads, sizeof(struct slice));
  pthread_t *tids = calloc(threads, sizeof(pthread_t));
  for (int r = 0; r < rounds; r++) {
    char c;
    if (read(ready[0], &c, 1) != 1) die("ready");
    usleep(100000);
    double t0 = now_ms();
    if (write(start[1], &t0, sizeof t0) != sizeof t0) die("start");
    for (int t = 0; t < threads; t++) {
      slices[t] = (struct slice){fds, n * t / threads, n * (t + 1) / threads, bytes, data};
      pthread_create(&tids[t], NULL, write_slice, &slices[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    double write_ms = now_ms() - t0;
    if (write(start[1], &write_ms, sizeof write_ms) != sizeof write_ms) die("written");
  }
  int status;
  wait(&status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
