/*
 * metrics_http.h: the metrics endpoint's HTTP/1.1 server (core.metrics_listen; the API and
 * what it answers are at the top of metrics_http.c, the metrics in docs/metrics.md).
 *
 * Threading: everything runs on the thread that owns the lua_State (the loop's thread).
 */
#ifndef HR_LUA_METRICS_HTTP_H
#define HR_LUA_METRICS_HTTP_H

#include <lua.h>

/* Add metrics_listen to the module table at the top of the stack. Returns 0. */
int hr__lua_open_metrics_http(lua_State *L);

#endif
