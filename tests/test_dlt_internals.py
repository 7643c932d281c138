"""What we rely on in dlt beyond its documented API (onepin_source/dlt_internals.py and the
application's twin, onepin_etl/dlt_internals.py).

Each test names one reliance; when a dlt upgrade breaks one, its name says which, and the
module's docstring says what depends on it.
"""

from __future__ import annotations

import inspect

import dlt
import pytest
from dlt.common.schema import Schema
from dlt.normalize.configuration import ItemsNormalizerConfiguration

from onepin_etl import dlt_internals as app_internals
from onepin_source import dlt_internals as internals


def parameters(function: object) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]  # type: ignore[arg-type]


def test_dlt_is_the_pinned_minor() -> None:
    assert dlt.__version__.startswith("1.31."), "review onepin_source/dlt_internals.py first"


def test_merge_dedup_sql_hook_keeps_its_signature() -> None:
    assert parameters(app_internals.SqlMergeFollowupJob.gen_select_from_dedup_sql) == [
        "table_name", "primary_keys", "columns", "dedup_sort", "condition", "condition_columns",
        "skip_dedup"]


def test_duckdb_client_creates_merge_jobs_through_the_overridden_method() -> None:
    client = app_internals.DuckDbClient
    assert parameters(client._create_merge_followup_jobs) == ["table_chain"]
    source = inspect.getsource(inspect.getmodule(app_internals.SqlMergeFollowupJob))  # type: ignore[arg-type]
    assert "gen_select_from_dedup_sql(" in source
    assert dlt.destinations.duckdb().destination_type == "dlt.destinations.duckdb"


def test_arrow_row_id_settings_exist() -> None:
    fields = ItemsNormalizerConfiguration.__dataclass_fields__
    assert {key.rsplit(".", 1)[1] for key in internals.ARROW_ROW_IDS_CONFIG} <= set(fields)
    assert all(key.startswith("normalize.parquet_normalizer.")
               for key in internals.ARROW_ROW_IDS_CONFIG)


def test_arrow_extractor_still_logs_the_hint_warning_we_filter() -> None:
    from dlt.extract import extractors

    source = inspect.getsource(extractors)
    assert internals.HINT_OVERRIDE_WARNING in source
    # batches._JsonHintFilter recognises run_steps' warning by this prefix
    assert 'f"In resource: {resource.name}, when merging arrow schema with dlt schema,"' in source


def test_normalizer_typing_functions_behave_as_arrow_rows_expects() -> None:
    schema = Schema("onepin")
    assert internals.normalize_identifier(schema, schema.naming, "recordsProcessed") == \
        "records_processed"
    assert internals.EMPTY_KEY_IDENTIFIER == "_empty"
    assert internals.VARIANT_FIELD_FORMAT % "text" == "v_text"
    assert internals.py_type_to_sc_type(int) == "bigint"
    assert internals.autodetect_sc_type(["iso_timestamp"], str, "2026-01-05T00:00:00Z") == \
        "timestamp"
    assert internals.coerce_value("bigint", "text", "12") == 12
    with pytest.raises(ValueError):
        internals.coerce_value("bigint", "text", "2.0k")


def test_hinted_items_reach_a_transformer_as_data_item_with_meta() -> None:
    item = dlt.mark.with_hints([{"a": 1}], dlt.mark.make_hints(columns={"a": {"name": "a"}}))
    assert isinstance(item, internals.DataItemWithMeta) and item.data == [{"a": 1}]


def test_destinations_resolve_by_reference_and_refuse_unknown_names() -> None:
    duckdb = app_internals.Destination.from_reference("duckdb")
    assert duckdb is not None and duckdb.destination_name == "duckdb"
    with pytest.raises(app_internals.UnknownDestinationModule):
        app_internals.Destination.from_reference("nosuch")
    # the missing fields, named in our one-line configuration error
    assert "self.fields = " in inspect.getsource(app_internals.ConfigFieldMissingException)


def test_duckdb_capabilities_do_not_depend_on_its_configuration() -> None:
    """What ``capabilities_once`` relies on: dlt's duckdb factory keeps the base
    ``adjust_capabilities``, which reads the naming convention's case sensitivity only."""
    assert vars(app_internals.Destination)["adjust_capabilities"] is next(
        vars(klass)["adjust_capabilities"] for klass in dlt.destinations.duckdb.__mro__
        if "adjust_capabilities" in vars(klass))
    source = inspect.getsource(app_internals.Destination.adjust_capabilities)
    assert "config." not in source and "naming.is_case_sensitive" in source
    assert inspect.signature(app_internals.Destination.capabilities).parameters.keys() == {
        "self", "config", "naming"}


def test_attaching_a_pipeline_never_run_raises_cannot_restore(tmp_path: object) -> None:
    with pytest.raises(app_internals.CannotRestorePipelineException):
        dlt.attach(pipeline_name="never_run", pipelines_dir=str(tmp_path))
    assert app_internals.get_dlt_pipelines_dir()


def test_config_providers_say_where_a_setting_is() -> None:
    """doctor reads each provider in order: its name, whether it is empty, ``get_value``."""
    providers = dlt.config.config_providers
    assert providers and all(isinstance(p, app_internals.ConfigProvider) for p in providers)
    for member in ("name", "is_empty", "get_value"):
        assert hasattr(app_internals.ConfigProvider, member), member


def test_a_paginator_takes_a_compiled_total_path_as_it_is() -> None:
    from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

    path = internals.compile_path("pagination.total")
    assert internals.compile_path(path) is path
    paginator = OffsetPaginator(limit=100, total_path=path)
    assert paginator.total_path is path
