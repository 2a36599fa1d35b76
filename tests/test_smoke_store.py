from dashboard.hub import patient_topic


async def test_owner_score_reaches_lead_subscriber(world):
    store = world.store
    sub = store.hub.subscribe(world.lead, [patient_topic(world.patient.id)])
    score = await store.record_score(principal=world.owner, patient_id=world.patient.id,
                                     score_type="barthel", value=55)
    delivery = await sub.get(timeout=1)
    assert delivery is not None and delivery.object_id == score.id
    assert delivery.data["scoreValue"] == 55
