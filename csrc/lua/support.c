/*
 * support.c: the helpers every userdata class and binding file uses (binding.h):
 * failures as Lua sees them and the metatable of a class. Linked into helios.core and
 * helios.testkit (csrc/testkit), each module with its own copy.
 */
#include <string.h>

#include "binding.h"

int hr__lua_push_fail(lua_State *L, const char *code, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, code);
    lua_pushstring(L, detail);
    return 3;
}

int hr__lua_push_errno(lua_State *L, const char *what, int e)
{
    lua_pushnil(L);
    lua_pushstring(L, "io");
    lua_pushfstring(L, "%s: %s", what, strerror(e));
    return 3;
}

void hr__lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                       lua_CFunction gc, lua_CFunction tostring)
{
    /* luaopen_helios_core and luaopen_helios_testkit run once per lua_State (they cache
     * their table), so a metatable is created once; if another copy of the module made
     * it, reuse it as it is. */
    if (luaL_newmetatable(L, name)) {
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        if (gc != NULL) {
            lua_pushcfunction(L, gc);
            lua_setfield(L, -2, "__gc");
        }
        if (tostring != NULL) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
    }
    lua_pop(L, 1);
}
