/*
 * The pod sandbox's only process, for the CRI tests: it holds the pod's namespaces open and
 * does nothing else. As PID 1 of the sandbox's PID namespace it gets no default signal
 * actions, so it installs its own: SIGINT and SIGTERM end it, SIGCHLD reaps any child that
 * was re-parented to it. The three signals stay blocked except inside sigsuspend(), so a
 * SIGTERM cannot slip in between the check of `stopping` and the wait. Built with
 * `gcc -static` by tools/pause/build.sh.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_stop(int signo)
{
    (void)signo;
    stopping = 1;
}

static void on_child(int signo)
{
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static int handle(int signo, void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(signo, &sa, NULL);
}

int main(void)
{
    sigset_t blocked, waiting;

    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &blocked, &waiting) || handle(SIGINT, on_stop) || handle(SIGTERM, on_stop) ||
        handle(SIGCHLD, on_child)) {
        perror("pause: signal set-up");
        return 1;
    }
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGCHLD);
    while (!stopping) {
        sigsuspend(&waiting);
    }
    return 0;
}
