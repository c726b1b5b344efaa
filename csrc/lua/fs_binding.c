/*
 * fs_binding.c: recognising a file system handed in from Lua (see fs_binding.h). Linked
 * into helios.core and into helios.testkit: each module uses its own copy, and they agree
 * through the layout in the header, not through shared symbols.
 */
#include <stddef.h>

#include <lauxlib.h>

#include "fs_binding.h"

struct hr_lua_fs *hr__lua_to_fs(lua_State *L, int idx)
{
    static const char *const classes[] = HR_LUA_FS_CLASSES;
    if (idx < 0 && idx > LUA_REGISTRYINDEX) {
        idx = lua_gettop(L) + idx + 1; /* the pushes below would move it */
    }
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) {
        return NULL;
    }
    struct hr_lua_fs *box = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0] && box == NULL; i++) {
        luaL_getmetatable(L, classes[i]);
        if (lua_rawequal(L, -1, -2)) {
            box = *(struct hr_lua_fs **)lua_touserdata(L, idx);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return box;
}

struct hr_lua_fs *hr__lua_opt_fs(lua_State *L, int idx, const char *what)
{
    if (!lua_istable(L, idx)) {
        return NULL;
    }
    lua_getfield(L, idx, "fs");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    struct hr_lua_fs *box = hr__lua_to_fs(L, -1);
    if (box == NULL || box->fs == NULL) {
        luaL_error(L, "%s: fs must be a file system of helios.testkit (got %s)", what,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return box;
}

struct hr_fs *hr__lua_fs_of(struct hr_lua_fs *box)
{
    return box != NULL ? box->fs : NULL;
}

void hr__lua_fs_ref(struct hr_lua_fs *box)
{
    if (box != NULL) {
        box->refs++;
    }
}

void hr__lua_fs_unref(struct hr_lua_fs *box)
{
    if (box != NULL && --box->refs == 0) {
        box->free(box);
    }
}
