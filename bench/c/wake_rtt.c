/* Round trip of waking another thread and being woken back (POSIX
 * semaphores, the futexes under Python's locks and libuv's async), first
 * with the two threads free to run on any CPU, then both on CPU 0.
 *
 * This is the floor under a blocking apply().result() loop: the caller
 * hands its command to the raft thread and sleeps until the raft thread
 * hands the result back, one such round trip per command, which the C
 * driver (submitting from its own completion callback) never pays.
 *
 * Build: make bench-c.  Run: bench/c/wake_rtt [round trips]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static sem_t ping, pong;
static int rounds;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *echo(void *arg)
{
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        sem_wait(&ping);
        sem_post(&pong);
    }
    return NULL;
}

static void pin(pthread_t thread, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(thread, sizeof set, &set);
}

static int measure(const char *label, int same_cpu)
{
    double *rtt = malloc(rounds * sizeof *rtt);
    pthread_t peer;
    if (rtt == NULL)
        return 1;
    sem_init(&ping, 0, 0);
    sem_init(&pong, 0, 0);
    if (same_cpu)
        pin(pthread_self(), 0);
    if (pthread_create(&peer, NULL, echo, NULL) != 0) {
        free(rtt);
        return 1;
    }
    if (same_cpu)
        pin(peer, 0);
    for (int i = 0; i < rounds; i++) {
        double t0 = now_us();
        sem_post(&ping);
        sem_wait(&pong);
        rtt[i] = now_us() - t0;
    }
    pthread_join(peer, NULL);
    qsort(rtt, rounds, sizeof *rtt, by_value);
    printf("%-10s p50 %6.1f us  p99 %6.1f us  (%d round trips)\n", label,
           rtt[rounds / 2], rtt[rounds * 99 / 100], rounds);
    sem_destroy(&ping);
    sem_destroy(&pong);
    free(rtt);
    return 0;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atoi(argv[1]) : 20000;
    if (rounds < 100)
        rounds = 100;
    printf("thread wake-up round trip\n");
    if (measure("any CPU", 0) != 0 || measure("same CPU", 1) != 0) {
        fprintf(stderr, "wake_rtt: cannot start a thread\n");
        return 1;
    }
    return 0;
}
