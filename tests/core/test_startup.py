import gc

from app.main import FULL_COLLECTION_EVERY


async def test_start_up_freezes_its_heap_and_makes_full_collections_rarer(client):
    # `client` ran the app's start-up; long-lived objects are out of the collector's sight.
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[2] == FULL_COLLECTION_EVERY
