/* Native speed-ups for the append path; raas.native says when they are used.
 *
 * - salted_commitment: a personal field's salt and commitment (raas.core.commitments), in one
 *   call instead of six hash objects.
 * - sha256_each / sha256_pairs: SHA-256 over a list of byte strings, or of pairs of them, with
 *   one OpenSSL context, not a Python hash object each (leaf and key hashes; Merkle nodes).
 * - raas_rows: an eponymous SQLite virtual table, registered with sqlite3_auto_extension for
 *   every connection opened after this module is imported. It reads a batch's rows out of a few
 *   packed blobs, so `INSERT INTO events SELECT ... FROM raas_rows(...)` stores a batch in one
 *   statement instead of binding every row's parameters from Python (about 1.8 us an event).
 *
 * The same bytes as the pure-Python code path, which stays the reference: the tests compare both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#define DIGEST_SIZE 32

/* ---- SHA-256 ------------------------------------------------------------------------------ */

static const EVP_MD *sha256_md;

/* SHA-256(prefix || items[i * group] || ... || items[i * group + group - 1]) for each i: the
 * digests of single items (group 1) or of pairs (group 2), as a list of bytes. */
static PyObject *
sha256_grouped(PyObject *const *args, Py_ssize_t nargs, const char *name, Py_ssize_t group)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s takes 2 arguments, got %zd", name, nargs);
        return NULL;
    }
    Py_buffer prefix;
    if (PyObject_GetBuffer(args[1], &prefix, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *sequence = PySequence_Fast(args[0], "items must be a sequence of byte strings");
    PyObject *result = NULL;
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (sequence == NULL || context == NULL) {
        if (context == NULL)
            PyErr_NoMemory();
        goto failed;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    if (count % group != 0) {
        PyErr_Format(PyExc_ValueError, "%s needs an even number of items, got %zd", name, count);
        goto failed;
    }
    result = PyList_New(count / group);
    if (result == NULL)
        goto failed;
    PyObject **item = PySequence_Fast_ITEMS(sequence);
    for (Py_ssize_t i = 0; i < count / group; i++) {
        unsigned char out[DIGEST_SIZE];
        int hashed = EVP_DigestInit_ex(context, sha256_md, NULL) &&
                     EVP_DigestUpdate(context, prefix.buf, (size_t)prefix.len);
        for (Py_ssize_t member = 0; member < group && hashed; member++) {
            Py_buffer view;
            if (PyObject_GetBuffer(item[i * group + member], &view, PyBUF_SIMPLE) < 0)
                goto failed;
            hashed = EVP_DigestUpdate(context, view.buf, (size_t)view.len);
            PyBuffer_Release(&view);
        }
        if (!hashed || !EVP_DigestFinal_ex(context, out, NULL)) {
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not compute a SHA-256 digest");
            goto failed;
        }
        PyObject *value = PyBytes_FromStringAndSize((const char *)out, DIGEST_SIZE);
        if (value == NULL)
            goto failed;
        PyList_SET_ITEM(result, i, value);
    }
    EVP_MD_CTX_free(context);
    Py_DECREF(sequence);
    PyBuffer_Release(&prefix);
    return result;
failed:
    EVP_MD_CTX_free(context);
    Py_XDECREF(result);
    Py_XDECREF(sequence);
    PyBuffer_Release(&prefix);
    return NULL;
}

PyDoc_STRVAR(sha256_each_doc,
             "sha256_each(items, prefix) -> list[bytes]\n\n"
             "SHA-256(prefix || item) of each item (bytes-like), with one OpenSSL context.");

static PyObject *
sha256_each(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return sha256_grouped(args, nargs, "sha256_each", 1);
}

PyDoc_STRVAR(sha256_pairs_doc,
             "sha256_pairs(items, prefix) -> list[bytes]\n\n"
             "SHA-256(prefix || items[2i] || items[2i + 1]) of each pair: a Merkle level's "
             "parents.");

static PyObject *
sha256_pairs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return sha256_grouped(args, nargs, "sha256_pairs", 2);
}

/* ---- commitments to personal fields -------------------------------------------------------- */

#define HMAC_BLOCK_SIZE 64
#define COMMITMENT_KEY_SIZE 32
#define SALT_SIZE 16
#define COMMITMENT_PREFIX "sha256:"

static void
base64_of(const unsigned char *bytes, size_t size, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        unsigned long group = (unsigned long)bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
        for (int shift = 18; shift >= 0; shift -= 6)
            *out++ = alphabet[group >> shift & 0x3F];
    }
    if (size - i == 1) {
        unsigned long group = (unsigned long)bytes[i] << 16;
        *out++ = alphabet[group >> 18 & 0x3F];
        *out++ = alphabet[group >> 12 & 0x3F];
        *out++ = '=';
        *out++ = '=';
    } else if (size - i == 2) {
        unsigned long group = (unsigned long)bytes[i] << 16 | bytes[i + 1] << 8;
        *out++ = alphabet[group >> 18 & 0x3F];
        *out++ = alphabet[group >> 12 & 0x3F];
        *out++ = alphabet[group >> 6 & 0x3F];
        *out++ = '=';
    }
}

PyDoc_STRVAR(salted_commitment_doc,
             "salted_commitment(commitment_key, material, value) -> (salt_base64, commitment)\n\n"
             "salt = HMAC-SHA256(commitment_key, material)[:16]; commitment = 'sha256:' + "
             "hex(SHA-256(salt || UTF-8 value)).");

static PyObject *
salted_commitment(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "salted_commitment takes 3 arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "the value must be a str");
        return NULL;
    }
    Py_ssize_t value_size;
    const char *value = PyUnicode_AsUTF8AndSize(args[2], &value_size);
    if (value == NULL)
        return NULL;
    Py_buffer key, material;
    if (PyObject_GetBuffer(args[0], &key, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &material, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&key);
        return NULL;
    }
    PyObject *result = NULL;
    EVP_MD_CTX *context = NULL;
    if (key.len != COMMITMENT_KEY_SIZE) {
        PyErr_Format(PyExc_ValueError, "a commitment key has %d bytes, got %zd",
                     COMMITMENT_KEY_SIZE, key.len);
        goto done;
    }
    context = EVP_MD_CTX_new();
    if (context == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* HMAC (RFC 2104) with a key shorter than the block: the key padded with zeros. */
    unsigned char inner_pad[HMAC_BLOCK_SIZE], outer_pad[HMAC_BLOCK_SIZE];
    memset(inner_pad, 0x36, sizeof inner_pad);
    memset(outer_pad, 0x5C, sizeof outer_pad);
    for (Py_ssize_t i = 0; i < key.len; i++) {
        inner_pad[i] ^= ((const unsigned char *)key.buf)[i];
        outer_pad[i] ^= ((const unsigned char *)key.buf)[i];
    }
    unsigned char inner[DIGEST_SIZE], salt[DIGEST_SIZE], hashed[DIGEST_SIZE];
    int made = EVP_DigestInit_ex(context, sha256_md, NULL) &&
               EVP_DigestUpdate(context, inner_pad, sizeof inner_pad) &&
               EVP_DigestUpdate(context, material.buf, (size_t)material.len) &&
               EVP_DigestFinal_ex(context, inner, NULL) &&
               EVP_DigestInit_ex(context, sha256_md, NULL) &&
               EVP_DigestUpdate(context, outer_pad, sizeof outer_pad) &&
               EVP_DigestUpdate(context, inner, sizeof inner) &&
               EVP_DigestFinal_ex(context, salt, NULL) &&
               EVP_DigestInit_ex(context, sha256_md, NULL) &&
               EVP_DigestUpdate(context, salt, SALT_SIZE) &&
               EVP_DigestUpdate(context, value, (size_t)value_size) &&
               EVP_DigestFinal_ex(context, hashed, NULL);
    if (!made) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not compute a SHA-256 digest");
        goto done;
    }
    char salt_text[(SALT_SIZE + 2) / 3 * 4];
    base64_of(salt, SALT_SIZE, salt_text);
    char commitment[sizeof COMMITMENT_PREFIX - 1 + 2 * DIGEST_SIZE];
    memcpy(commitment, COMMITMENT_PREFIX, sizeof COMMITMENT_PREFIX - 1);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < DIGEST_SIZE; i++) {
        commitment[sizeof COMMITMENT_PREFIX - 1 + 2 * i] = hex[hashed[i] >> 4];
        commitment[sizeof COMMITMENT_PREFIX + 2 * i] = hex[hashed[i] & 0xF];
    }
    result = Py_BuildValue("(s#s#)", salt_text, (Py_ssize_t)sizeof salt_text, commitment,
                           (Py_ssize_t)sizeof commitment);
done:
    EVP_MD_CTX_free(context);
    PyBuffer_Release(&material);
    PyBuffer_Release(&key);
    return result;
}

/* ---- raas_rows: a batch's event rows out of packed blobs ----------------------------------- */

/* Arguments, in the order the table-valued function takes them. Integer arrays are native-endian
 * int64 (Python's array('q')); ends are each row's end offset in the concatenated bytes. */
enum {
    COLUMN_POSITION,
    COLUMN_SEQ,
    COLUMN_KEY_HASH,
    COLUMN_ENTRY,
    COLUMN_DISCLOSURES,
    ARGUMENT_POSITIONS,
    ARGUMENT_FIRST_SEQ,
    ARGUMENT_KEY_HASHES,
    ARGUMENT_ENTRIES,
    ARGUMENT_ENTRY_ENDS,
    ARGUMENT_DISCLOSURES,
    ARGUMENT_DISCLOSURE_ENDS,
    COLUMNS
};
#define FIRST_ARGUMENT ARGUMENT_POSITIONS
#define ARGUMENTS (COLUMNS - FIRST_ARGUMENT)

typedef struct {
    sqlite3_vtab base;
} rows_table;

typedef struct {
    sqlite3_vtab_cursor base;
    sqlite3_value *arguments[ARGUMENTS]; /* copies, owned: the rows point into them */
    const unsigned char *positions, *key_hashes, *entry_ends, *disclosure_ends;
    const unsigned char *entries, *disclosures;
    sqlite3_int64 count, first_seq, row;
} rows_cursor;

static int
rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **table,
             char **error)
{
    int code = sqlite3_declare_vtab(
        db,
        "CREATE TABLE x(position INTEGER, seq INTEGER, key_hash INTEGER, entry BLOB,"
        " disclosures BLOB, positions HIDDEN, first_seq HIDDEN, key_hashes HIDDEN,"
        " entries HIDDEN, entry_ends HIDDEN, disclosures_all HIDDEN, disclosure_ends HIDDEN)");
    if (code != SQLITE_OK)
        return code;
    rows_table *made = sqlite3_malloc(sizeof *made);
    if (made == NULL)
        return SQLITE_NOMEM;
    memset(made, 0, sizeof *made);
    *table = &made->base;
    return SQLITE_OK;
}

static int
rows_disconnect(sqlite3_vtab *table)
{
    sqlite3_free(table);
    return SQLITE_OK;
}

static int
rows_open(sqlite3_vtab *table, sqlite3_vtab_cursor **cursor)
{
    rows_cursor *made = sqlite3_malloc(sizeof *made);
    if (made == NULL)
        return SQLITE_NOMEM;
    memset(made, 0, sizeof *made);
    *cursor = &made->base;
    return SQLITE_OK;
}

static void
rows_release(rows_cursor *cursor)
{
    for (int i = 0; i < ARGUMENTS; i++) {
        sqlite3_value_free(cursor->arguments[i]);
        cursor->arguments[i] = NULL;
    }
    cursor->count = cursor->row = 0;
}

static int
rows_close(sqlite3_vtab_cursor *base)
{
    rows_release((rows_cursor *)base);
    sqlite3_free(base);
    return SQLITE_OK;
}

/* Every argument must be given, each with "=": the function has no meaning otherwise. */
static int
rows_best_index(sqlite3_vtab *table, sqlite3_index_info *info)
{
    int given = 0;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *constraint = &info->aConstraint[i];
        int argument = constraint->iColumn - FIRST_ARGUMENT;
        if (argument < 0)
            continue;
        if (!constraint->usable || constraint->op != SQLITE_INDEX_CONSTRAINT_EQ)
            return SQLITE_CONSTRAINT;
        info->aConstraintUsage[i].argvIndex = argument + 1;
        info->aConstraintUsage[i].omit = 1;
        given |= 1 << argument;
    }
    if (given != (1 << ARGUMENTS) - 1) {
        sqlite3_free(table->zErrMsg);
        table->zErrMsg = sqlite3_mprintf("raas_rows takes %d arguments", ARGUMENTS);
        return SQLITE_ERROR;
    }
    info->estimatedCost = 1.0;
    return SQLITE_OK;
}

static sqlite3_int64
read_int64(const unsigned char *array, sqlite3_int64 index)
{
    sqlite3_int64 value;
    memcpy(&value, array + index * (sqlite3_int64)sizeof value, sizeof value);
    return value;
}

/* Whether `ends` (count int64s) rise from 0 to at most `size`. */
static int
ends_fit(const unsigned char *ends, sqlite3_int64 count, sqlite3_int64 size)
{
    sqlite3_int64 previous = 0;
    for (sqlite3_int64 i = 0; i < count; i++) {
        sqlite3_int64 end = read_int64(ends, i);
        if (end < previous || end > size)
            return 0;
        previous = end;
    }
    return 1;
}

static int
rows_refuse(rows_cursor *cursor, const char *reason)
{
    rows_release(cursor);
    sqlite3_free(cursor->base.pVtab->zErrMsg);
    cursor->base.pVtab->zErrMsg = sqlite3_mprintf("raas_rows: %s", reason);
    return SQLITE_ERROR;
}

static int
rows_filter(sqlite3_vtab_cursor *base, int plan, const char *plan_text, int argc,
            sqlite3_value **argv)
{
    rows_cursor *cursor = (rows_cursor *)base;
    rows_release(cursor);
    if (argc != ARGUMENTS)
        return rows_refuse(cursor, "every argument must be given");
    for (int i = 0; i < ARGUMENTS; i++) {
        cursor->arguments[i] = sqlite3_value_dup(argv[i]);
        if (cursor->arguments[i] == NULL) {
            rows_release(cursor);
            return SQLITE_NOMEM;
        }
    }
    sqlite3_value **given = cursor->arguments;
    sqlite3_int64 sizes[ARGUMENTS];
    for (int i = 0; i < ARGUMENTS; i++) {
        if (i + FIRST_ARGUMENT == ARGUMENT_FIRST_SEQ) {
            if (sqlite3_value_type(given[i]) != SQLITE_INTEGER)
                return rows_refuse(cursor, "first_seq must be an integer");
            continue;
        }
        if (sqlite3_value_type(given[i]) != SQLITE_BLOB)
            return rows_refuse(cursor, "the arrays and the bytes must be blobs");
        sizes[i] = sqlite3_value_bytes(given[i]);
    }
#define ARGUMENT(name) (ARGUMENT_##name - FIRST_ARGUMENT)
#define BLOB(name) ((const unsigned char *)sqlite3_value_blob(given[ARGUMENT(name)]))
    sqlite3_int64 count = sizes[ARGUMENT(POSITIONS)] / 8;
    if (sizes[ARGUMENT(POSITIONS)] % 8 != 0 || sizes[ARGUMENT(KEY_HASHES)] != count * 8 ||
        sizes[ARGUMENT(ENTRY_ENDS)] != count * 8 || sizes[ARGUMENT(DISCLOSURE_ENDS)] != count * 8)
        return rows_refuse(cursor, "the arrays must hold one int64 for every row");
    cursor->positions = BLOB(POSITIONS);
    cursor->key_hashes = BLOB(KEY_HASHES);
    cursor->entries = BLOB(ENTRIES);
    cursor->entry_ends = BLOB(ENTRY_ENDS);
    cursor->disclosures = BLOB(DISCLOSURES);
    cursor->disclosure_ends = BLOB(DISCLOSURE_ENDS);
    if (!ends_fit(cursor->entry_ends, count, sizes[ARGUMENT(ENTRIES)]) ||
        !ends_fit(cursor->disclosure_ends, count, sizes[ARGUMENT(DISCLOSURES)]))
        return rows_refuse(cursor, "the ends must rise within the bytes");
    cursor->first_seq = sqlite3_value_int64(given[ARGUMENT(FIRST_SEQ)]);
    if (cursor->first_seq < 0 || cursor->first_seq > INT64_MAX - count)
        return rows_refuse(cursor, "first_seq must be a seq the rows can count on from");
    cursor->count = count;
    cursor->row = 0;
#undef BLOB
#undef ARGUMENT
    return SQLITE_OK;
}

static int
rows_next(sqlite3_vtab_cursor *base)
{
    ((rows_cursor *)base)->row++;
    return SQLITE_OK;
}

static int
rows_eof(sqlite3_vtab_cursor *base)
{
    rows_cursor *cursor = (rows_cursor *)base;
    return cursor->row >= cursor->count;
}

static void
result_slice(sqlite3_context *context, const unsigned char *bytes, const unsigned char *ends,
             sqlite3_int64 row)
{
    sqlite3_int64 start = row == 0 ? 0 : read_int64(ends, row - 1);
    sqlite3_int64 end = read_int64(ends, row);
    /* A zero-length blob, not NULL: the columns are NOT NULL. */
    sqlite3_result_blob64(context, bytes == NULL ? (const unsigned char *)"" : bytes + start,
                          (sqlite3_uint64)(end - start), SQLITE_TRANSIENT);
}

static int
rows_column(sqlite3_vtab_cursor *base, sqlite3_context *context, int column)
{
    rows_cursor *cursor = (rows_cursor *)base;
    sqlite3_int64 row = cursor->row;
    switch (column) {
    case COLUMN_POSITION:
        sqlite3_result_int64(context, read_int64(cursor->positions, row));
        break;
    case COLUMN_SEQ:
        sqlite3_result_int64(context, cursor->first_seq + row);
        break;
    case COLUMN_KEY_HASH:
        sqlite3_result_int64(context, read_int64(cursor->key_hashes, row));
        break;
    case COLUMN_ENTRY:
        result_slice(context, cursor->entries, cursor->entry_ends, row);
        break;
    case COLUMN_DISCLOSURES:
        result_slice(context, cursor->disclosures, cursor->disclosure_ends, row);
        break;
    default:
        sqlite3_result_null(context); /* the arguments are not read back */
    }
    return SQLITE_OK;
}

static int
rows_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
    *rowid = ((rows_cursor *)base)->row;
    return SQLITE_OK;
}

static sqlite3_module rows_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: used as a table-valued function, never created */
    .xConnect = rows_connect,
    .xBestIndex = rows_best_index,
    .xDisconnect = rows_disconnect,
    .xDestroy = rows_disconnect,
    .xOpen = rows_open,
    .xClose = rows_close,
    .xFilter = rows_filter,
    .xNext = rows_next,
    .xEof = rows_eof,
    .xColumn = rows_column,
    .xRowid = rows_rowid,
};

static int
register_rows(sqlite3 *db, char **error, const void *api)
{
    return sqlite3_create_module_v2(db, "raas_rows", &rows_module, NULL, NULL);
}

/* ---- the module ---------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"sha256_each", (PyCFunction)(void (*)(void))sha256_each, METH_FASTCALL, sha256_each_doc},
    {"salted_commitment", (PyCFunction)(void (*)(void))salted_commitment, METH_FASTCALL,
     salted_commitment_doc},
    {"sha256_pairs", (PyCFunction)(void (*)(void))sha256_pairs, METH_FASTCALL, sha256_pairs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "raas._native",
    .m_doc = "Native speed-ups for the append path (see raas.native).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* Fetched once: EVP_sha256() would look the implementation up again at every digest. */
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    sha256_md = EVP_sha256();
#endif
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    if (sqlite3_auto_extension((void (*)(void))register_rows) != SQLITE_OK) {
        PyErr_SetString(PyExc_ImportError, "SQLite refused to register raas_rows");
        return NULL;
    }
    return PyModule_Create(&module_definition);
}
