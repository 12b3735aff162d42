with

source as (

    select * from {{ source('shop_db', 'customers') }}

),

renamed as (

    select

        ----------  ids
        customer_id,

        ---------- text
        name as customer_name,
        -- Mail servers treat addresses case-insensitively; one spelling keeps lookups and counts consistent.
        lower(email) as email,
        country,

        ---------- timestamps
        created_at,
        updated_at,

        ---------- lineage
        _dlt_load_id as dlt_load_id

    from source

)

select * from renamed
