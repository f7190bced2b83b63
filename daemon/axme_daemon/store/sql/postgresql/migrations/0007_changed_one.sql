-- A conditional write the daemon sends without waiting for its row count (pipelined): the
-- statement itself fails, and with it the transaction, when it changed no row (SQLSTATE
-- AXST0: the daemon runs the batch again, then reading the count).
CREATE FUNCTION axme_changed_one(n BIGINT) RETURNS INTEGER LANGUAGE plpgsql AS $$
BEGIN
    IF n <> 1 THEN
        RAISE EXCEPTION 'a conditional write changed % rows, not 1', n USING ERRCODE = 'AXST0';
    END IF;
    RETURN 1;
END $$;
