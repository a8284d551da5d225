/*
 * The pod sandbox process of the real-node tests' pause image (built by images.py with
 * `gcc -Os -static -s`): holds the pod's namespaces open and does nothing else.
 *
 * It runs as PID 1 of the pod's PID namespace, where the kernel drops every signal that
 * has no handler, so each one it must act on gets one:
 *   SIGINT, SIGTERM  exit 0 (the runtime stopping the sandbox);
 *   SIGCHLD          reap every exited child (orphans of a shared PID namespace end up
 *                    here), so no zombie outlives its container.
 * Otherwise it pause()s forever.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    int saved = errno;

    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int sig, void (*handler)(int), int flags)
{
    struct sigaction action;

    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    return sigaction(sig, &action, NULL);
}

int main(void)
{
    if (handle(SIGINT, on_stop, 0) < 0 || handle(SIGTERM, on_stop, 0) < 0 ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
        static const char message[] = "pause: sigaction failed\n";
        (void)!write(STDERR_FILENO, message, sizeof message - 1);
        return 1;
    }
    for (;;) {
        pause();
    }
}
