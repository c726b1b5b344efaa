/*
 * snapshot_writer.h: the buffered writer through which a snapshot function writes its
 * bytes (w:write(s, ...)), shared by the three ways a snapshot file is made: in a forked
 * child and in-process all at once (fork_snapshot.c), and in-process in slices
 * (snapshot_file.c). docs/fork-snapshot.md says which is used when.
 *
 * Ownership: the writer does not own its fd (whoever opened it closes it); it owns its
 * buffer, freed by hr__snap_writer_close or its __gc.
 * Threading: the thread that owns the lua_State, or a forked child's only thread.
 * Errors: the functions taking a lua_State raise Lua errors ("snapshot write: <errno text>").
 */
#ifndef HR_LUA_SNAPSHOT_WRITER_H
#define HR_LUA_SNAPSHOT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#define HR__SNAP_WRITER_MT "helios.core.snapshot_writer"

struct hr__snap_writer {
    int fd;         /* -1: closed, w:write raises */
    char *buf;      /* HR__SNAP_WRITER_BUF bytes, allocated on the first buffered write */
    size_t len;
    uint64_t bytes; /* handed to write(2) */
};

/* Writes reach the file in 1 MiB pieces: few system calls, and little memory in a child. */
#define HR__SNAP_WRITER_BUF ((size_t)1 << 20)

/* A new writer userdata on the stack (class HR__SNAP_WRITER_MT), closed (fd -1). */
struct hr__snap_writer *hr__snap_writer_push(lua_State *L);
/* Initialise a writer embedded in another object (closed). */
void hr__snap_writer_init(struct hr__snap_writer *w);
/* The arguments first..top (strings or numbers, as file:write) in order; raises. */
void hr__snap_writer_args(lua_State *L, struct hr__snap_writer *w, int first);
void hr__snap_writer_put(lua_State *L, struct hr__snap_writer *w, const char *p, size_t n);
void hr__snap_writer_flush(lua_State *L, struct hr__snap_writer *w);
/* The buffered bytes to the fd without raising: 0 or an errno. */
int hr__snap_writer_drain(struct hr__snap_writer *w);
/* Drop the buffer (unwritten bytes are lost: flush first) and mark the writer closed; the
 * fd is the caller's, bytes keeps its count. */
void hr__snap_writer_close(struct hr__snap_writer *w);
/* write(2) until done, retrying EINTR: 0 or an errno. */
int hr__snap_write_all(int fd, const char *p, size_t n);
/* Create path for writing (O_CREAT | O_EXCL | O_CLOEXEC, mode 0600): an fd or -1 (errno). */
int hr__snap_open_tmp(const char *path);
/* Register the writer's class (its write method). */
void hr__lua_open_snapshot_writer(lua_State *L);

#endif
